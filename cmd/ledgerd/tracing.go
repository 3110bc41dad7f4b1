package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// newTracerProvider sets up OpenTelemetry tracing from the standard OTEL_* variables. It is off
// (nil) unless OTEL_TRACES_EXPORTER is "otlp" or an OTLP endpoint is set
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); OTEL_TRACES_EXPORTER=none
// turns it off whatever else is set. The exporter speaks OTLP over gRPC, or over HTTP with
// OTEL_EXPORTER_OTLP_PROTOCOL (or ..._TRACES_PROTOCOL) = http/protobuf, and reads its endpoint,
// headers, TLS and timeout from the OTEL_EXPORTER_OTLP_* variables itself; the sampler follows
// OTEL_TRACES_SAMPLER, the resource OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
func newTracerProvider(ctx context.Context) (*sdktrace.TracerProvider, string, error) {
	exporter := os.Getenv("OTEL_TRACES_EXPORTER")
	switch exporter {
	case "none":
		return nil, "off", nil
	case "", "otlp":
	default:
		return nil, "", fmt.Errorf("OTEL_TRACES_EXPORTER=%q: ledgerd exports traces by otlp only (or none)", exporter)
	}
	if exporter == "" && os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return nil, "off", nil
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch strings.ToLower(protocol) {
	case "", "grpc":
		protocol = "grpc"
		exp, err = otlptracegrpc.New(ctx)
	case "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, "", fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: want grpc or http/protobuf", protocol)
	}
	if err != nil {
		return nil, "", fmt.Errorf("OTLP trace exporter: %w", err)
	}
	// service.name defaults to ledgerd; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", "ledgerd")),
		resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil {
		return nil, "", fmt.Errorf("OpenTelemetry resource: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), "otlp/" + protocol, nil
}
