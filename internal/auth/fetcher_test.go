package auth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/bulk"
)

// keyServer is a TLS server publishing a key set that tests change.
type keyServer struct {
	*httptest.Server
	mu           sync.Mutex
	body         []byte
	cacheControl string
	age          string
	hits         atomic.Int64
}

func newKeyServer(t *testing.T, set json.RawMessage, cacheControl string) *keyServer {
	t.Helper()
	ks := &keyServer{body: set, cacheControl: cacheControl}
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		ks.hits.Add(1)
		if r.Header.Get("Accept") != "application/json" {
			http.Error(w, "want Accept: application/json", http.StatusNotAcceptable)
			return
		}
		ks.mu.Lock()
		defer ks.mu.Unlock()
		if ks.cacheControl != "" {
			w.Header().Set("Cache-Control", ks.cacheControl)
		}
		if ks.age != "" {
			w.Header().Set("Age", ks.age)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(ks.body)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", 70<<10) + `"}`))
	})
	mux.HandleFunc("/404", http.NotFound)
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html></html>")) })
	ks.Server = httptest.NewTLSServer(mux)
	t.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) set(body json.RawMessage, cacheControl string) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.body, ks.cacheControl = body, cacheControl
}

func (ks *keyServer) jwksURL() string { return ks.URL + "/jwks.json" }

// uriHarness is a harness whose fetcher trusts ks and allows loopback.
func uriHarness(t *testing.T, ks *keyServer) *harness {
	h := newHarness(t)
	h.a.Fetcher = &auth.JWKSFetcher{Client: ks.Client(), AllowLoopback: true, Now: h.clock.Now}
	return h
}

func (h *harness) token(t *testing.T, alg string, key any, kid, client string) error {
	t.Helper()
	a := sign(alg, key, header(alg, kid), h.claims(client))
	_, err := h.a.Token(context.Background(), form(a, "system/*.rs"), tokenURL)
	return err
}

func TestTokenJWKSURI(t *testing.T) {
	keys(t)
	ks := newKeyServer(t, jwks(jwk(rsaKey, "r1"), jwk(ecKey, "e1")), "max-age=300")
	h := uriHarness(t, ks)
	h.addClient(t, &bulk.Client{ID: "uri", JWKSURI: ks.jwksURL()})

	if err := h.token(t, "RS384", rsaKey, "r1", "uri"); err != nil {
		t.Errorf("Token(RS384 via jwks_uri): %v", err)
	}
	if err := h.token(t, "ES384", ecKey, "e1", "uri"); err != nil {
		t.Errorf("Token(ES384 via jwks_uri): %v", err)
	}
	if n := ks.hits.Load(); n != 1 {
		t.Errorf("key set fetched %d times for two tokens within max-age, want 1", n)
	}

	// jku equal to the registered URL is accepted; any other is refused.
	hdr := header("ES384", "e1")
	hdr["jku"] = ks.jwksURL()
	if _, err := h.a.Token(context.Background(), form(sign("ES384", ecKey, hdr, h.claims("uri")), "system/*.rs"), tokenURL); err != nil {
		t.Errorf("Token with jku = registered jwks_uri: %v", err)
	}
	hdr["jku"] = ks.URL + "/other.json"
	_, err := h.a.Token(context.Background(), form(sign("ES384", ecKey, hdr, h.claims("uri")), "system/*.rs"), tokenURL)
	wantOAuth(t, err, "invalid_client", "jku")
}

func TestTokenKeyRotation(t *testing.T) {
	keys(t)
	ks := newKeyServer(t, jwks(jwk(ecKey, "old")), "max-age=600")
	h := uriHarness(t, ks)
	h.addClient(t, &bulk.Client{ID: "uri", JWKSURI: ks.jwksURL()})
	if err := h.token(t, "ES384", ecKey, "old", "uri"); err != nil {
		t.Fatalf("Token(old key): %v", err)
	}

	// The client publishes a new key and drops the old one, then signs
	// with the new one at once, while the cached set is still fresh.
	ks.set(jwks(jwk(ecKey2, "new")), "max-age=600")
	// Right after the last fetch, the refetch is throttled.
	err := h.token(t, "ES384", ecKey2, "new", "uri")
	wantOAuth(t, err, "invalid_client", `kid "new"`)
	if n := ks.hits.Load(); n != 1 {
		t.Errorf("fetches within RefreshInterval of the last = %d, want 1 (throttled)", n)
	}
	h.clock.Advance(auth.DefaultRefreshInterval)
	if err := h.token(t, "ES384", ecKey2, "new", "uri"); err != nil {
		t.Errorf("Token(new key) after rotation: %v", err)
	}
	// Unknown kids are refetched at most once per RefreshInterval, however
	// many requests name them.
	for range 5 {
		err := h.token(t, "ES384", ecKey2, "bogus", "uri")
		wantOAuth(t, err, "invalid_client", `kid "bogus"`)
	}
	if n := ks.hits.Load(); n != 2 {
		t.Errorf("fetches after rotation and 5 unknown kids = %d, want 2", n)
	}
	// The old key is gone from the refreshed set.
	err = h.token(t, "ES384", ecKey, "old", "uri")
	wantOAuth(t, err, "invalid_client", `kid "old"`)
}

func TestJWKSCacheLifetime(t *testing.T) {
	keys(t)
	for _, tc := range []struct {
		name, cacheControl, age string
		fresh, stale            time.Duration // still cached at fresh, refetched at stale
	}{
		{"MaxAge", "public, max-age=60", "", 59 * time.Second, 60 * time.Second},
		{"MaxAgeQuoted", `max-age="60"`, "", 59 * time.Second, 60 * time.Second},
		{"MaxAgeLessAge", "max-age=60", "50", 9 * time.Second, 10 * time.Second},
		{"Default", "", "", 5*time.Minute - time.Second, 5 * time.Minute},
		{"CappedAtAnHour", "max-age=86400", "", time.Hour - time.Second, time.Hour},
		// Not cacheable: reused for RefreshInterval (10 s) only, so a
		// client cannot make every token request fetch (issue 14 item 4).
		{"NoStore", "no-store", "", 9 * time.Second, 10 * time.Second},
		{"NoCache", "max-age=600, no-cache", "", 9 * time.Second, 10 * time.Second},
		{"InvalidMaxAge", "max-age=soon", "", 9 * time.Second, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks := newKeyServer(t, jwks(jwk(ecKey, "e1")), tc.cacheControl)
			ks.age = tc.age
			h := uriHarness(t, ks)
			h.addClient(t, &bulk.Client{ID: "uri", JWKSURI: ks.jwksURL()})
			if err := h.token(t, "ES384", ecKey, "e1", "uri"); err != nil {
				t.Fatal(err)
			}
			want := int64(1)
			if tc.fresh >= 0 {
				h.clock.Advance(tc.fresh)
				if err := h.token(t, "ES384", ecKey, "e1", "uri"); err != nil {
					t.Fatal(err)
				}
				if n := ks.hits.Load(); n != want {
					t.Errorf("fetches at +%v = %d, want %d (cached)", tc.fresh, n, want)
				}
				h.clock.Advance(tc.stale - tc.fresh)
			}
			if err := h.token(t, "ES384", ecKey, "e1", "uri"); err != nil {
				t.Fatal(err)
			}
			want++
			if n := ks.hits.Load(); n != want {
				t.Errorf("fetches at +%v = %d, want %d (refetched)", tc.stale, n, want)
			}
		})
	}
}

func TestJWKSFetcherRefusals(t *testing.T) {
	keys(t)
	ks := newKeyServer(t, jwks(jwk(ecKey, "e1")), "")
	port := ks.Listener.Addr().(interface{ String() string }).String()
	port = port[strings.LastIndexByte(port, ':')+1:]
	redirect := func(to string) string { return ks.URL + "/redirect?to=" + url.QueryEscape(to) }

	const disallowed = "non-public address"
	for _, tc := range []struct {
		name          string
		url           string
		allowLoopback bool
		want          string // a fragment of the error message
	}{
		{"MetadataService", "https://169.254.169.254/latest/meta-data/", false, disallowed},
		{"MetadataServiceIPv6", "https://[fd00:ec2::254]/latest/meta-data/", false, disallowed},
		{"MetadataServiceMapped", "https://[::ffff:169.254.169.254]/", false, disallowed},
		{"MetadataServiceNAT64", "https://[64:ff9b::a9fe:a9fe]/", false, disallowed},
		{"Private10", "https://10.0.0.1/jwks.json", false, disallowed},
		{"Private192", "https://192.168.1.1/jwks.json", false, disallowed},
		{"CGNAT", "https://100.64.0.1/jwks.json", false, disallowed},
		{"LinkLocal6", "https://[fe80::1]/jwks.json", false, disallowed},
		{"Unspecified", "https://0.0.0.0/jwks.json", false, disallowed},
		{"Multicast", "https://224.0.0.1/jwks.json", false, disallowed},
		{"LoopbackLiteral", ks.jwksURL(), false, disallowed},
		// A name is checked on the address dialed: localhost resolves to
		// loopback, and the test server's trusted client does not help.
		{"LoopbackName", "https://localhost:" + port + "/jwks.json", false, disallowed},
		{"HTTP", "http://example.com/jwks.json", false, "must use https"},
		{"HTTPLoopbackNotAllowed", "http://127.0.0.1:" + port + "/jwks.json", false, "must use https"},
		{"HTTPNonLoopbackWithAllowLoopback", "http://example.com/jwks.json", true, "must use https"},
		{"FTP", "ftp://example.com/jwks.json", false, "must use https"},
		{"Relative", "/jwks.json", false, "absolute https URL"},
		{"Credentials", "https://user:pw@example.com/jwks.json", false, "credentials"},
		{"RedirectToHTTP", redirect("http://example.com/jwks.json"), true, "must use https"},
		{"RedirectToPrivate", redirect("https://10.0.0.1/jwks.json"), true, disallowed},
		{"RedirectToMetadata", redirect("https://169.254.169.254/latest/meta-data/"), true, disallowed},
		{"RedirectLoop", ks.URL + "/loop", true, "redirected more than 3 times"},
		{"TooBig", ks.URL + "/big", true, "larger than 65536 bytes"},
		{"NotFound", ks.URL + "/404", true, "HTTP 404"},
		{"NotJSON", ks.URL + "/html", true, "invalid: it is not a JSON Web Key Set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &auth.JWKSFetcher{Client: ks.Client(), AllowLoopback: tc.allowLoopback, Now: func() time.Time { return t0 }}
			before := ks.hits.Load()
			_, err := f.Fetch(context.Background(), tc.url)
			if err == nil {
				t.Fatalf("Fetch(%s) succeeded, want an error containing %q", tc.url, tc.want)
			}
			t.Logf("%v", err)
			if bulk.ErrorCode(err) != bulk.EINVALID || !strings.Contains(bulk.ErrorMessage(err), tc.want) {
				t.Errorf("Fetch(%s) error = %v (message %q), want %s containing %q", tc.url, err, bulk.ErrorMessage(err), bulk.EINVALID, tc.want)
			}
			if tc.want == disallowed && !tc.allowLoopback && ks.hits.Load() != before {
				t.Errorf("Fetch(%s) reached the server", tc.url)
			}
		})
	}

	t.Run("RedirectWithinRules", func(t *testing.T) {
		f := &auth.JWKSFetcher{Client: ks.Client(), AllowLoopback: true}
		if _, err := f.Fetch(context.Background(), redirect(ks.jwksURL())); err != nil {
			t.Errorf("Fetch via an https redirect to loopback (allowed): %v", err)
		}
	})

	t.Run("TransportNotReplaceable", func(t *testing.T) {
		f := &auth.JWKSFetcher{Client: &http.Client{Transport: roundTripper(func(*http.Request) (*http.Response, error) {
			return nil, fmt.Errorf("should not be called")
		})}}
		_, err := f.Fetch(context.Background(), "https://example.com/jwks.json")
		if bulk.ErrorCode(err) != bulk.EINTERNAL {
			t.Errorf("Fetch with a custom RoundTripper error = %v, want %s", err, bulk.EINTERNAL)
		}
	})

	t.Run("FailureRemembered", func(t *testing.T) {
		now := t0
		f := &auth.JWKSFetcher{Client: ks.Client(), AllowLoopback: true, Now: func() time.Time { return now }}
		ks.set(nil, "")
		defer ks.set(jwks(jwk(ecKey, "e1")), "")
		before := ks.hits.Load()
		for range 3 {
			if _, err := f.Fetch(context.Background(), ks.jwksURL()); err == nil {
				t.Fatal("Fetch of an empty body succeeded")
			}
		}
		if n := ks.hits.Load() - before; n != 1 {
			t.Errorf("fetches for 3 calls after a failure = %d, want 1", n)
		}
		now = now.Add(auth.DefaultRefreshInterval)
		ks.set(jwks(jwk(ecKey, "e1")), "")
		if _, err := f.Fetch(context.Background(), ks.jwksURL()); err != nil {
			t.Errorf("Fetch after RefreshInterval: %v", err)
		}
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestJWKSFetcherConcurrent checks that concurrent token requests for one
// URL share a fetch.
func TestJWKSFetcherConcurrent(t *testing.T) {
	keys(t)
	ks := newKeyServer(t, jwks(jwk(ecKey, "e1")), "max-age=60")
	f := &auth.JWKSFetcher{Client: ks.Client(), AllowLoopback: true, Now: func() time.Time { return t0 }}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.Fetch(context.Background(), ks.jwksURL()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := ks.hits.Load(); n != 1 {
		t.Errorf("20 concurrent Fetches made %d requests, want 1", n)
	}
}
