package server

import (
	"context"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthService is grpc-go's health server whose Watch streams also end when the server shuts
// down. GracefulStop waits for every open stream, and a Watch never ends on its own: one client
// watching health (as gRPC clients with health checking do, on every connection) would hold a
// graceful stop for the whole shutdown timeout, and then have its calls cut.
type healthService struct {
	*health.Server
	stopping chan struct{}
}

func newHealthService() *healthService {
	return &healthService{Server: health.NewServer(), stopping: make(chan struct{})}
}

// Watch serves the status stream until the client leaves or the server shuts down; watchers see
// NOT_SERVING first when they can, and the end of the stream in any case.
func (h *healthService) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	return h.Server.Watch(req, watchStream{Health_WatchServer: stream, ctx: ctx})
}

// shutdown reports NOT_SERVING everywhere and ends the Watch streams.
func (h *healthService) shutdown() {
	h.Server.Shutdown()
	close(h.stopping)
}

type watchStream struct {
	healthpb.Health_WatchServer
	ctx context.Context
}

func (w watchStream) Context() context.Context { return w.ctx }
