package auth_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/mem"
)

// uniqueReplay gives every MarkUsed its own key, so a benchmark can present
// one signed assertion many times and still pay for a real replay-cache
// insert: signing a fresh RSA assertion per iteration would cost more than
// verifying it.
type uniqueReplay struct {
	inner *mem.ReplayCache
	n     atomic.Int64
}

func (r *uniqueReplay) MarkUsed(ctx context.Context, key string, exp time.Time) error {
	return r.inner.MarkUsed(ctx, key+"#"+strconv.FormatInt(r.n.Add(1), 10), exp)
}

// BenchmarkToken measures the token endpoint end to end through
// Authority.Token: form checks, decoding, client lookup, inline JWKS
// parsing, signature verification, claims, replay insert, scopes and
// signing the access token. "assertions/s" is the throughput on all
// GOMAXPROCS for the Parallel variants and on one goroutine otherwise.
func BenchmarkToken(b *testing.B) {
	for _, tc := range []struct {
		alg, kid string
		key      any
	}{{"RS384", "r1", nil}, {"ES384", "e1", nil}} {
		h := newHarness(b)
		h.a.Replay = &uniqueReplay{inner: mem.NewReplayCache(h.clock.Now)}
		h.addClient(b, &bulk.Client{ID: "c", JWKS: jwks(jwk(rsaKey, "r1"), jwk(ecKey, "e1"))})
		key := any(rsaKey)
		if tc.alg == "ES384" {
			key = ecKey
		}
		f := form(sign(tc.alg, key, header(tc.alg, tc.kid), h.claims("c")), "system/*.rs")
		ctx := context.Background()
		b.Run(tc.alg, func(b *testing.B) {
			for b.Loop() {
				if _, err := h.a.Token(ctx, f, tokenURL); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "assertions/s")
		})
		b.Run(tc.alg+"/Parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := h.a.Token(ctx, f, tokenURL); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "assertions/s")
		})
	}
}

// BenchmarkVerify measures access-token verification, which runs on every
// FHIR request.
func BenchmarkVerify(b *testing.B) {
	h := newHarness(b)
	h.addClient(b, &bulk.Client{ID: "c", JWKS: jwks(jwk(ecKey, "e1"))})
	tok, err := h.a.Token(context.Background(), form(sign("ES384", ecKey, header("ES384", "e1"), h.claims("c")), "system/*.rs"), tokenURL)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("Serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := h.a.Verify(ctx, tok.AccessToken); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
	})
	b.Run("Parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := h.a.Verify(ctx, tok.AccessToken); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
	})
}
