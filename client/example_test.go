package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc/status"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/server"
)

// startServer stands in for a deployed ledgerd: a real server on a temporary SQLite file, on a
// loopback port. It returns the server's address and a function that stops it.
func startServer() (addr string, stop func()) {
	dir, err := os.MkdirTemp("", "budgetledger-example-")
	if err != nil {
		log.Fatal(err)
	}
	l, err := ledger.Open(context.Background(), filepath.Join(dir, "ledger.db"), ledger.Config{TxTimeout: testdb.TxTimeout})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.New(l, server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	return lis.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-served; err != nil {
			log.Print(err)
		}
		l.Close()
		os.RemoveAll(dir)
	}
}

// createFund makes the fund of the examples: 88 M€ and its first axis of 30 M€ (in cents).
func createFund(ctx context.Context, c *client.Client) {
	if _, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "fund",
		DisplayName: "Transformation numérique des collectivités territoriales", Allocation: 8_800_000_000}); err != nil {
		log.Fatal(err)
	}
	if _, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "axis-1", Parent: "envelopes/fund",
		DisplayName: "Axe 1 - outils numériques communs", Allocation: 3_000_000_000}); err != nil {
		log.Fatal(err)
	}
}

func ExampleDial() {
	addr, stop := startServer()
	defer stop()
	ctx := context.Background()

	// In production: client.Dial(ctx, "ledger.internal:443", client.WithToken(token)), over TLS.
	c, err := client.Dial(ctx, addr, client.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	resp, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{
		EnvelopeID:  "fund",
		DisplayName: "Transformation numérique des collectivités territoriales",
		Allocation:  8_800_000_000, // 88 M€ in cents
	})
	if err != nil {
		log.Fatal(err)
	}
	env := resp.GetEnvelope()
	fmt.Println(env.GetName(), env.GetAvailable(), env.GetCurrencyCode())
	// Output: envelopes/fund 8800000000 EUR
}

func ExampleClient_Commit() {
	addr, stop := startServer()
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, addr, client.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	createFund(ctx, c)

	// Keep the request id with the award: sending it again, even after a crash, returns the
	// first outcome instead of awarding twice.
	award := client.CommitParams{
		Envelope:    "envelopes/axis-1",
		Beneficiary: "siren:200054781",
		Project:     "guichet-numerique",
		Amount:      30_000_000, // 300,000 € in cents
		RequestID:   "award-0001",
	}
	first, err := c.Commit(ctx, award)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("awarded:", first.GetCommitment().GetAmount())
	fmt.Println("axis-1 available:", first.GetEnvelope().GetAvailable())

	again, err := c.Commit(ctx, award)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same commitment:", again.GetCommitment().GetName() == first.GetCommitment().GetName())
	fmt.Println("axis-1 available:", again.GetEnvelope().GetAvailable())
	// Output:
	// awarded: 30000000
	// axis-1 available: 2970000000
	// same commitment: true
	// axis-1 available: 2970000000
}

// An award larger than what the envelope has left is refused with INSUFFICIENT_FUNDS; errors.As
// reads the figures the server sent.
func ExampleClient_Commit_insufficientFunds() {
	addr, stop := startServer()
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, addr, client.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	createFund(ctx, c)

	_, err = c.Commit(ctx, client.CommitParams{
		Envelope:    "envelopes/axis-1",
		Beneficiary: "siren:200054781",
		Project:     "too-big",
		Amount:      3_100_000_000,
	})
	if errors.Is(err, client.ErrInsufficientFunds) {
		var e *client.Error
		if errors.As(err, &e) {
			available, _ := e.Available()
			requested, _ := e.Requested()
			fmt.Printf("refused: %d available, %d requested\n", available, requested)
		}
	}
	fmt.Println("code:", status.Code(err))
	// Output:
	// refused: 3000000000 available, 3100000000 requested
	// code: FailedPrecondition
}

func ExampleClient_ListCommitments() {
	addr, stop := startServer()
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, addr, client.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	createFund(ctx, c)
	for i, project := range []string{"guichet-numerique", "grc", "open-data", "telepaiement", "sig"} {
		if _, err := c.Commit(ctx, client.CommitParams{Envelope: "envelopes/axis-1", Beneficiary: "siren:200054781",
			Project: project, Amount: int64(i+1) * 10_000_000}); err != nil {
			log.Fatal(err)
		}
	}

	// Pages of two are fetched as the loop goes; a break fetches nothing more.
	for cm, err := range c.ListCommitments(ctx, client.CommitmentFilter{Envelope: "envelopes/axis-1", PageSize: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(cm.GetProject(), cm.GetAmount())
	}
	// Output:
	// guichet-numerique 10000000
	// grc 20000000
	// open-data 30000000
	// telepaiement 40000000
	// sig 50000000
}
