package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/api"
	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/client"
	"github.com/tranchehq/tranche/internal/config"
	"github.com/tranchehq/tranche/internal/generate"
	"github.com/tranchehq/tranche/internal/importer"
)

// presigner is a fake api.Presigner: each URL carries a serial number, so
// a URL minted twice differs, and Err, when set, fails every call.
type presigner struct {
	mu   sync.Mutex
	n    int
	ttls []time.Duration
	Err  error
}

var _ api.Presigner = (*presigner)(nil)

const objectsHost = "https://objects.example"

func (p *presigner) PresignGet(_ context.Context, key string, ttl time.Duration) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Err != nil {
		return "", p.Err
	}
	p.n++
	p.ttls = append(p.ttls, ttl)
	return objectsHost + "/" + key + "?X-Amz-Expires=" + url.QueryEscape(ttl.String()) + "&sig=" + strings.Repeat("x", p.n), nil
}

// presignedServer is the local server with authorization, 3 patients'
// data, and the fake presigner listing its URLs in manifests.
type presignedServer struct {
	URL    string
	http   *http.Client
	tokens *client.BackendServices
	fake   *presigner
	api    *api.Server
}

func startPresigned(t *testing.T) *presignedServer {
	t.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.DataDir, cfg.Shards, cfg.Demo, cfg.PurgeEvery = t.TempDir(), 2, false, 0
	cfg.Auth.MaxPollsPerMinute = 0
	cfg.Export.MaxFileResources = 50 // several files per type
	cfg.Export.ManifestPageFiles = 2 // several manifest pages
	loadPatients(t, cfg, 3)
	l, err := app.NewLocal(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	fake := &presigner{}
	l.API.Downloads, l.API.DownloadTTL, l.API.PresignedManifests = fake, 2*time.Minute, true
	hs := httptest.NewServer(l.API.Handler())
	t.Cleanup(func() { hs.Close(); l.Close() })

	key, err := client.GenerateES384()
	if err != nil {
		t.Fatal(err)
	}
	md, _ := json.Marshal(map[string]any{"client_name": "test", "scope": "system/*.read",
		"jwks": map[string]any{"keys": []client.JWK{key.PublicJWK()}}})
	c, _, err := l.API.Authz.Authority.Register(ctx, md, auth.RegistrationDefaults{Groups: []string{"*"}})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	return &presignedServer{
		URL: hs.URL, http: hs.Client(), fake: fake, api: l.API,
		tokens: &client.BackendServices{ClientID: c.ID, Key: key, TokenURL: hs.URL + "/token", FHIRBase: hs.URL, Scope: "system/*.read", HTTP: hs.Client()},
	}
}

// loadPatients generates n patients' data into the store in cfg.DataDir.
func loadPatients(t *testing.T, cfg config.Config, n int) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]*os.File{}
	_, err := generate.Stream(context.Background(), generate.Options{Patients: n, Seed: 3}, func(typ string) (io.Writer, error) {
		if f := files[typ]; f != nil {
			return f, nil
		}
		f, err := os.Create(filepath.Join(dir, typ+".ndjson"))
		files[typ] = f
		return f, err
	}, nil)
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Name())
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	db, err := app.OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := importer.Import(context.Background(), db.Resources(), importer.Options{}, paths...); err != nil {
		t.Fatal(err)
	}
}

// get requests u, with the access token if token is set.
func (s *presignedServer) get(t *testing.T, u string, token bool) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", "application/json")
	if token {
		tok, err := s.tokens.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	hc := *s.http
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, body
}

// kickoff starts an export of query and returns its status URL.
func (s *presignedServer) kickoff(t *testing.T, query string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/$export?"+query, nil)
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Prefer", "respond-async")
	tok, err := s.tokens.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("kick-off %s: %s", query, res.Status)
	}
	return res.Header.Get("Content-Location")
}

// complete polls statusURL until the export completes and returns the
// last answer.
func (s *presignedServer) complete(t *testing.T, statusURL string) (*http.Response, manifest) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		res, body := s.get(t, statusURL, true)
		if res.StatusCode == http.StatusAccepted {
			continue
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %s: %s", statusURL, res.Status, body)
		}
		return res, parseManifest(t, body)
	}
	t.Fatalf("%s did not complete", statusURL)
	return nil, manifest{}
}

type manifest struct {
	RequiresAccessToken *bool `json:"requiresAccessToken"`
	Output              []struct {
		Type, URL string
	} `json:"output"`
	Link []struct{ Relation, URL string } `json:"link"`
}

func parseManifest(t *testing.T, body []byte) manifest {
	t.Helper()
	var m manifest
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("manifest %s: %v", body, err)
	}
	return m
}

// checkPresigned checks that m lists presigned URLs only, with
// requiresAccessToken false, and returns the URLs without their signature.
func checkPresigned(t *testing.T, m manifest) (urls, unsigned []string) {
	t.Helper()
	if m.RequiresAccessToken == nil || *m.RequiresAccessToken {
		t.Errorf("requiresAccessToken = %v, want false (R79)", m.RequiresAccessToken)
	}
	for _, f := range m.Output {
		if !strings.HasPrefix(f.URL, objectsHost+"/") || !strings.Contains(f.URL, "X-Amz-Expires=2m0s") {
			t.Errorf("output URL %s, want a presigned %s URL for 2m", f.URL, objectsHost)
		}
		base, _, _ := strings.Cut(f.URL, "&sig=")
		urls, unsigned = append(urls, f.URL), append(unsigned, base)
	}
	return urls, unsigned
}

// TestPresignedManifests: with PresignedManifests, a manifest lists
// short-lived object-store URLs minted at each poll (R79, R80) with
// requiresAccessToken false, the status URL still needs the token, and the
// /files route still redirects.
func TestPresignedManifests(t *testing.T) {
	s := startPresigned(t)
	statusURL := s.kickoff(t, "_type=Patient,Observation")

	t.Run("Complete", func(t *testing.T) {
		start := time.Now().Truncate(time.Second)
		res, m := s.complete(t, statusURL)
		if len(m.Output) < 2 {
			t.Fatalf("manifest lists %d output files, want several", len(m.Output))
		}
		urls1, keys1 := checkPresigned(t, m)
		exp, err := http.ParseTime(res.Header.Get("Expires"))
		if err != nil || exp.Before(start.Add(2*time.Minute)) || exp.After(time.Now().Add(2*time.Minute)) {
			t.Errorf("Expires = %q, want when the URLs expire, 2 minutes from now", res.Header.Get("Expires"))
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", cc)
		}

		// Every poll mints fresh URLs for the same files, in the same
		// order.
		_, m2 := s.complete(t, statusURL)
		urls2, keys2 := checkPresigned(t, m2)
		if strings.Join(keys1, " ") != strings.Join(keys2, " ") {
			t.Errorf("second poll lists %v, want the same files %v", keys2, keys1)
		}
		for i := range urls1 {
			if i < len(urls2) && urls1[i] == urls2[i] {
				t.Errorf("second poll repeats URL %s, want a fresh one", urls1[i])
			}
		}
		for _, ttl := range s.fake.ttls {
			if ttl != 2*time.Minute {
				t.Errorf("presigned for %s, want DownloadTTL 2m", ttl)
			}
		}
	})

	t.Run("NarrowToken", func(t *testing.T) {
		// Issue 15 item 8: a token narrowed to Observation polls the same
		// job; only the files it may read are presigned, the others name
		// the authenticated route, which refuses it.
		wide := s.tokens
		s.tokens = &client.BackendServices{ClientID: wide.ClientID, Key: wide.Key, TokenURL: wide.TokenURL, FHIRBase: wide.FHIRBase, Scope: "system/Observation.read", HTTP: wide.HTTP}
		defer func() { s.tokens = wide }()
		_, m := s.complete(t, statusURL)
		seen := map[string]bool{}
		for _, f := range m.Output {
			presigned := strings.HasPrefix(f.URL, objectsHost+"/")
			if presigned != (f.Type == "Observation") {
				t.Errorf("%s file URL %s: presigned = %v, want %v", f.Type, f.URL, presigned, f.Type == "Observation")
			}
			if !presigned {
				if res, _ := s.get(t, f.URL, true); res.StatusCode != http.StatusForbidden {
					t.Errorf("GET %s with the narrow token = %s, want 403", f.URL, res.Status)
				}
			}
			seen[f.Type] = true
		}
		if !seen["Patient"] || !seen["Observation"] {
			t.Fatalf("manifest types %v, want Patient and Observation", seen)
		}
	})

	t.Run("StatusNeedsToken", func(t *testing.T) {
		if res, _ := s.get(t, statusURL, false); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a token = %s, want 401", statusURL, res.Status)
		}
	})

	t.Run("FilesRouteRedirects", func(t *testing.T) {
		// A client holding a manifest from before the switch still
		// downloads through /files.
		_, m := s.complete(t, statusURL)
		_, keys := checkPresigned(t, m)
		key := strings.TrimPrefix(keys[0], objectsHost+"/")
		key, _, _ = strings.Cut(key, "?")
		res, body := s.get(t, s.URL+"/files/"+key, true)
		if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), objectsHost+"/"+key+"?") {
			t.Errorf("GET /files/%s = %s (Location %q): %s, want 302 to a presigned URL", key, res.Status, res.Header.Get("Location"), body)
		}
		if res, _ := s.get(t, s.URL+"/files/"+key, false); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /files/%s without a token = %s, want 401", key, res.Status)
		}
	})

	t.Run("Pages", func(t *testing.T) {
		u := s.kickoff(t, "_type=Patient,Observation&allowPartialManifests=true")
		_, m := s.complete(t, u)
		var all []string
		for page := 1; ; page++ {
			_, keys := checkPresigned(t, m)
			all = append(all, keys...)
			if len(m.Link) == 0 {
				break
			}
			res, body := s.get(t, m.Link[0].URL, true)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %s: %s", m.Link[0].URL, res.Status, body)
			}
			if res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("Expires") == "" {
				t.Errorf("page %d: Cache-Control %q, Expires %q; want no-store and the URLs' expiry", page+1, res.Header.Get("Cache-Control"), res.Header.Get("Expires"))
			}
			m = parseManifest(t, body)
		}
		if len(all) < 3 {
			t.Errorf("paged manifest lists %d files, want at least 3 over 2 pages", len(all))
		}
	})

	t.Run("PresignFails", func(t *testing.T) {
		// Presigning needs credentials; a failure is a 500 that says
		// nothing of the cause.
		s.fake.mu.Lock()
		s.fake.Err = errors.New("secret credential trouble")
		s.fake.mu.Unlock()
		defer func() { s.fake.mu.Lock(); s.fake.Err = nil; s.fake.mu.Unlock() }()
		res, body := s.get(t, statusURL, true)
		if res.StatusCode != http.StatusInternalServerError || strings.Contains(string(body), "secret") {
			t.Errorf("GET %s with presigning failing = %s: %s, want 500 without the cause", statusURL, res.Status, body)
		}
	})
}

// TestPresignedManifestTooLarge: a complete manifest of presigned URLs
// larger than MaxPresignedManifestBytes (a Lambda answers at most 6 MB)
// lists the same files as /files URLs with requiresAccessToken true
// instead, and each of them still downloads with the token (R72, R79).
func TestPresignedManifestTooLarge(t *testing.T) {
	s := startPresigned(t)
	statusURL := s.kickoff(t, "_type=Patient,Observation")
	_, small := s.complete(t, statusURL)
	_, keys := checkPresigned(t, small)

	s.api.MaxPresignedManifestBytes = 200 // far below this manifest
	res, m := s.complete(t, statusURL)
	if m.RequiresAccessToken == nil || !*m.RequiresAccessToken {
		t.Errorf("requiresAccessToken = %v, want true for /files URLs", m.RequiresAccessToken)
	}
	if len(m.Output) != len(keys) {
		t.Fatalf("large manifest lists %d files, the presigned one %d", len(m.Output), len(keys))
	}
	for i, f := range m.Output {
		key := strings.TrimPrefix(keys[i], objectsHost+"/")
		key, _, _ = strings.Cut(key, "?")
		if f.URL != s.URL+"/files/"+key {
			t.Errorf("output %d URL %s, want %s", i, f.URL, s.URL+"/files/"+key)
		}
	}
	if cc := res.Header.Get("Cache-Control"); cc == "no-store" {
		t.Errorf("Cache-Control no-store on a manifest without presigned URLs")
	}
	if r, body := s.get(t, m.Output[0].URL, true); r.StatusCode != http.StatusFound {
		t.Errorf("GET %s = %s: %s, want a redirect to the object", m.Output[0].URL, r.Status, body)
	}
}
