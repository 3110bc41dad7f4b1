package server_test

import (
	"bytes"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/budgetledger/budgetledger/server"
)

// rawHTTP2 is a bare HTTP/2 connection to a server, to see the frames a gRPC client hides: the
// server's settings, refused streams, GOAWAY.
type rawHTTP2 struct {
	t  *testing.T
	fr *http2.Framer
}

func dialRawHTTP2(t *testing.T, addr string) *rawHTTP2 {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// The deadline only turns a hang into a failure; nothing waits for it.
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return &rawHTTP2{t: t, fr: fr}
}

// openWatch opens a health Watch stream with id and sends no request yet, so it stays open.
func (c *rawHTTP2) openWatch(id uint32) {
	c.t.Helper()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/grpc.health.v1.Health/Watch"},
		{":authority", "ledger"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			c.t.Fatal(err)
		}
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
}

// until reads frames until match returns true for one, answering pings and settings.
func (c *rawHTTP2) until(what string, match func(http2.Frame) bool) http2.Frame {
	c.t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			if err := c.fr.WriteSettingsAck(); err != nil {
				c.t.Fatal(err)
			}
		}
	}
}

// TestConcurrentStreamsPerConnection protects the bound on what one connection holds open: the
// server announces MaxConcurrentStreams and refuses (REFUSED_STREAM) a stream beyond it, so that
// one client cannot open thousands of health watches on one connection.
func TestConcurrentStreamsPerConnection(t *testing.T) {
	t.Parallel()
	addr, _ := serveLedger(t, server.Config{MaxConcurrentStreams: 2})
	c := dialRawHTTP2(t, addr)
	settings := c.until("the server's settings", func(f http2.Frame) bool {
		s, ok := f.(*http2.SettingsFrame)
		return ok && !s.IsAck()
	}).(*http2.SettingsFrame)
	if v, ok := settings.Value(http2.SettingMaxConcurrentStreams); !ok || v != 2 {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d (sent: %v), want 2", v, ok)
	}
	if err := c.fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint32{1, 3, 5} {
		c.openWatch(id)
	}
	rst := c.until("RST_STREAM", func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok }).(*http2.RSTStreamFrame)
	if rst.StreamID != 5 || rst.ErrCode != http2.ErrCodeRefusedStream {
		t.Errorf("RST_STREAM on stream %d with %v, want stream 5 REFUSED_STREAM (the third of a limit of 2)", rst.StreamID, rst.ErrCode)
	}
}

// TestDefaultConcurrentStreams protects the default: a server configured with nothing still
// bounds the streams of a connection.
func TestDefaultConcurrentStreams(t *testing.T) {
	t.Parallel()
	addr, _ := serveLedger(t, server.Config{})
	c := dialRawHTTP2(t, addr)
	settings := c.until("the server's settings", func(f http2.Frame) bool {
		s, ok := f.(*http2.SettingsFrame)
		return ok && !s.IsAck()
	}).(*http2.SettingsFrame)
	if v, ok := settings.Value(http2.SettingMaxConcurrentStreams); !ok || v != server.DefaultMaxConcurrentStreams {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d (sent: %v), want the default %d", v, ok, server.DefaultMaxConcurrentStreams)
	}
}

// TestMaxConnectionAge protects the connection lifetime: past MaxConnectionAge the server sends
// GOAWAY, so that a client's long-lived streams are spread again and its resources returned.
func TestMaxConnectionAge(t *testing.T) {
	t.Parallel()
	addr, _ := serveLedger(t, server.Config{MaxConnectionAge: 50 * time.Millisecond, MaxConnectionAgeGrace: time.Hour})
	// The grace is long so that the connection is still open however slowly the test reaches it:
	// the GOAWAY is what is checked, not the close after the grace.
	c := dialRawHTTP2(t, addr)
	c.openWatch(1)
	c.until("GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
}

// TestKeepaliveEnforcement protects the ping policy: a client pinging faster than
// KeepaliveMinTime is sent GOAWAY ENHANCE_YOUR_CALM ("too_many_pings").
func TestKeepaliveEnforcement(t *testing.T) {
	t.Parallel()
	addr, _ := serveLedger(t, server.Config{KeepaliveMinTime: time.Hour})
	c := dialRawHTTP2(t, addr)
	for i := range 4 {
		if err := c.fr.WritePing(false, [8]byte{byte(i)}); err != nil {
			break // the server may close the connection after its GOAWAY
		}
	}
	away := c.until("GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if away.ErrCode != http2.ErrCodeEnhanceYourCalm || string(away.DebugData()) != "too_many_pings" {
		t.Errorf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", away.ErrCode, away.DebugData())
	}
}
