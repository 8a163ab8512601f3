// Package api holds Tranche's net/http handlers. The local server and the
// Lambdas (through aws-lambda-go-api-proxy) serve the same handlers.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/search"
)

// Principal is who is calling: the client that owns the jobs it starts,
// and what its access token grants (nil on an open server).
type Principal struct {
	ClientID string
	Grant    *auth.Grant
	// cached is set when Grant came from the verified-token cache: its
	// contract may be up to verifiedFor old (withGroup).
	cached bool
}

// OpenClientID owns every job when the server runs without authorization.
const OpenClientID = "open"

// Server serves the FHIR Bulk Data routes.
type Server struct {
	// FHIR is the store's release (nil: R4): which types kick-offs may name
	// and what the CapabilityStatement declares (issue 17).
	FHIR      *fhir.Model
	Export    *export.Service
	Resources bulk.ResourceReader
	Objects   bulk.ObjectStore
	// Authz, when set, requires SMART Backend Services tokens on every FHIR
	// route and serves the token, registration and discovery endpoints.
	// Nil means the server is open (local use only).
	Authz *Authz
	// BaseURL, when set, is the absolute FHIR base (no trailing slash).
	// Otherwise it is derived from each request (TLS and Host; with
	// TrustProxy also X-Forwarded-Proto and X-Forwarded-Host).
	BaseURL    string
	TrustProxy bool
	Logger     *slog.Logger
	Version    string
	// Downloads, when set, answers file requests with a 302 to a
	// short-lived URL of the object store instead of serving the bytes
	// (AWS: S3 presigned GET); DownloadTTL is that URL's lifetime (default
	// 5 min).
	Downloads   Presigner
	DownloadTTL time.Duration
	// PresignedManifests, with Downloads set, lists those short-lived URLs
	// in manifests themselves, minted at every status poll and never
	// stored, with requiresAccessToken false (R79; requirements appendix
	// B, option a): clients download straight from the object store, with
	// no token and no redirect. The status poll still needs the token, and
	// the /files route keeps answering for manifests fetched before.
	PresignedManifests bool
	// MaxPresignedManifestBytes, when set, bounds a complete manifest of
	// presigned URLs (each about 1 KB): above it the manifest lists the
	// /files URLs instead (about 100 bytes each, which redirect to a fresh
	// presigned URL) with requiresAccessToken true. A Lambda response is
	// at most 6 MB, so a 1 M-member Group's 15,000 presigned URLs could not
	// be served at all; its /files URLs fit.
	MaxPresignedManifestBytes int
	// LenientHeaders accepts kick-offs without Accept or Prefer:
	// respond-async (read as application/fhir+json and respond-async), for
	// clients that do not send them; by default they are 400.
	LenientHeaders bool
	// MaxBodyBytes bounds POST bodies.
	MaxBodyBytes int64
	// Cohorts, when set, serves the Bulk Cohort API (cohort.go).
	Cohorts CohortService
}

// Handler returns the routes wrapped in logging and panic recovery.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metadata", s.metadata)
	for _, p := range []string{"/$export", "/Patient/$export", "/Group/{id}/$export"} {
		mux.HandleFunc("GET "+p, s.kickoff)
		mux.HandleFunc("POST "+p, s.kickoff)
	}
	mux.HandleFunc("GET /jobs/{id}", s.status)
	mux.HandleFunc("GET /jobs/{id}/manifest/{n}", s.page)
	mux.HandleFunc("DELETE /jobs/{id}", s.cancel)
	mux.HandleFunc("GET /files/{key...}", s.file)
	mux.HandleFunc("GET /Group", s.searchGroups)
	mux.HandleFunc("GET /Group/{id}", s.readGroup)
	if s.Cohorts != nil {
		s.cohortRoutes(mux)
	}
	if s.Authz != nil {
		mux.HandleFunc("GET /.well-known/smart-configuration", s.smartConfiguration)
		mux.HandleFunc("POST /token", s.token)
		mux.HandleFunc("POST /register", s.register)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, s.Logger, bulk.Errorf(bulk.ENOTFOUND, "No route for %s %s.", r.Method, r.URL.Path))
	})
	return s.recover(s.log(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// CONNECT never reaches a pattern (its target is a host, not a
		// path), so the mux would answer Go's plain-text 404.
		if r.Method == http.MethodConnect {
			writeError(w, r, s.Logger, bulk.Errorf(bulk.EMETHOD, "CONNECT is not supported: this is a FHIR server, not a proxy."))
			return
		}
		mux.ServeHTTP(w, r)
	})))
}

// engine is the _typeFilter and _elements engine of the store's release.
func (s *Server) engine() *search.Engine { return search.For(s.model().Version) }

// model is the store's release.
func (s *Server) model() *fhir.Model {
	if s.FHIR != nil {
		return s.FHIR
	}
	return fhir.R4Model()
}

func (s *Server) base(r *http.Request) string {
	if s.BaseURL != "" {
		return s.BaseURL
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if s.TrustProxy {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			scheme = p
		}
		if h := r.Header.Get("X-Forwarded-Host"); h != "" {
			host = h
		}
	}
	return scheme + "://" + host
}

// principal authenticates a FHIR route.
func (s *Server) principal(r *http.Request) (*Principal, error) {
	if s.Authz == nil {
		return &Principal{ClientID: OpenClientID}, nil
	}
	return s.Authz.authenticate(r)
}

func (s *Server) kickoff(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		// A GET pattern also matches HEAD, which must not start an
		// export (HEAD is safe, RFC 9110 §9.2.1).
		w.Header().Set("Allow", "GET, POST")
		writeError(w, r, s.Logger, bulk.Errorf(bulk.EMETHOD, "HEAD does not start an export; use GET or POST."))
		return
	}
	p, err := s.principal(r)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	// R7: an Accept that rules out application/fhir+json is 406; a
	// missing one is 400 unless LenientHeaders (kickoffHeaders).
	if !fhir.AcceptsFHIRJSON(r.Header.Get("Accept")) {
		writeError(w, r, s.Logger, bulk.Errorf(bulk.ENOTACCEPTABLE, "Kick-off responses are application/fhir+json; the Accept header does not allow it."))
		return
	}
	prefer := fhir.ParsePrefer(r.Header.Values("Prefer"))
	in, err := s.kickoffInput(w, r, prefer)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	req, err := fhir.ParseKickoff(in)
	if err == nil {
		req.SeparateStatus = prefer.SeparateExportStatus
		if req.Level == bulk.LevelGroup {
			p = s.withGroup(r, p, req.GroupID)
		}
		err = s.authorizeKickoff(r, p, &req)
	}
	if err == nil && req.Level == bulk.LevelGroup && s.Cohorts != nil {
		// Another client's cohort is as unknown as a Group that is not
		// stored (the service answers for those).
		if g, gerr := s.Resources.Get(r.Context(), "Group", req.GroupID); gerr == nil {
			err = s.visibleGroup(r.Context(), p, g)
		}
	}
	if err == nil && !s.LenientHeaders {
		err = kickoffHeaders(r, prefer)
	}
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	j, err := s.Export.KickoffWithin(r.Context(), p.ClientID, s.exportQuota(p), req)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	// R5: 202 with the absolute status URL. With LenientHeaders and no
	// Prefer: respond-async we still answer asynchronously: an export is
	// never synchronous (R8).
	w.Header().Set("Content-Location", s.base(r)+"/jobs/"+j.ID)
	w.Header().Set("Preference-Applied", preferenceApplied(&req))
	writeFHIR(w, http.StatusAccepted, fhir.Outcome("information", "informational", "Export accepted; poll the Content-Location URL for its status."))
}

// kickoffInput reads an $export request's query, level and POST body
// for fhir.ParseKickoff. Its errors are EINVALID.
func (s *Server) kickoffInput(w http.ResponseWriter, r *http.Request, prefer fhir.Prefer) (in fhir.KickoffInput, _ error) {
	// r.URL.Query() drops a pair it cannot decode, which would widen the
	// export: a bad escape is a 400 instead, as is a query past the limit.
	if len(r.URL.RawQuery) > maxQueryBytes {
		return in, bulk.Errorf(bulk.EINVALID, "The query string is %d bytes; at most %d are accepted (use POST with a Parameters body).", len(r.URL.RawQuery), maxQueryBytes)
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return in, bulk.Errorf(bulk.EINVALID, "The query string is not properly percent-encoded.")
	}
	in = fhir.KickoffInput{
		Method: r.Method, Query: query, RequestURL: s.base(r) + r.URL.RequestURI(), BaseURL: s.base(r),
		Lenient: prefer.Lenient, TypeFilter: s.engine().Canonical, Element: s.engine().CheckElement, Model: s.model(),
		Now: s.Export.Now(),
	}
	switch {
	case r.URL.Path == "/$export":
		in.Level = bulk.LevelSystem
	case r.URL.Path == "/Patient/$export":
		in.Level = bulk.LevelPatient
	default:
		in.Level, in.GroupID = bulk.LevelGroup, r.PathValue("id")
	}
	if r.Method == http.MethodPost {
		ct := strings.ToLower(r.Header.Get("Content-Type"))
		if ct != "" && !strings.HasPrefix(ct, "application/fhir+json") && !strings.HasPrefix(ct, "application/json") {
			return in, bulk.Errorf(bulk.EINVALID, "POST bodies must be a Parameters resource in application/fhir+json.")
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody()))
		if err != nil {
			return in, bulk.Errorf(bulk.EINVALID, "The request body is too large or unreadable.")
		}
		in.Body = body
	}
	return in, nil
}

// preferenceApplied is the Preference-Applied header of an accepted
// kick-off: the preferences honoured (RFC 7240 §3). separate-export-status
// is echoed with respond-async, as requirements 3.6 asks (R40).
func preferenceApplied(req *bulk.ExportRequest) string {
	applied := []string{"respond-async"}
	if req.Lenient {
		applied = append(applied, "handling=lenient")
	}
	if req.SeparateStatus {
		applied = append(applied, "separate-export-status")
	}
	return strings.Join(applied, ", ")
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	s.manifestPage(w, r, 1)
}

// page serves page n ≥ 2 of a paged manifest, the target of a page's
// `link` (allowPartialManifests, requirements 3.5).
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 2 || n > 1_000_000 {
		writeError(w, r, s.Logger, bulk.Errorf(bulk.ENOTFOUND, "No such manifest page."))
		return
	}
	s.manifestPage(w, r, n)
}

// manifestPage answers a status poll (page 1 is the status URL itself):
// 202 while the job runs, the failure, or the manifest (R45–R53). With
// allowPartialManifests the manifest comes in pages, listed while the job
// runs (R65, R66). Under separate-export-status every answer about the job
// is 200 and the job's own status is in X-Export-Status (R67).
func (s *Server) manifestPage(w http.ResponseWriter, r *http.Request, n int) {
	p, j, ok := s.pollJob(w, r)
	if !ok {
		return
	}
	links := s.manifestLinks(r, p, j)
	var m *export.Manifest
	if j.Request.AllowPartial {
		var err error
		if m, err = s.Export.ManifestPage(r.Context(), j, n, links.requiresToken, links.fileURL, links.pageURL); err == nil {
			err = links.presignErr
		}
		if err != nil {
			writeError(w, r, s.Logger, err)
			return
		}
		if m == nil && n > 1 && j.Status != bulk.StatusFailed {
			writeError(w, r, s.Logger, bulk.Errorf(bulk.ENOTFOUND, "No such manifest page (yet): follow the link of the page before."))
			return
		}
	} else if n > 1 {
		// Only a paged manifest has pages past the first.
		writeError(w, r, s.Logger, bulk.Errorf(bulk.ENOTFOUND, "No such manifest page: this export was not started with allowPartialManifests."))
		return
	}
	switch j.Status {
	case bulk.StatusAccepted, bulk.StatusInProgress:
		// R45–R47.
		w.Header().Set("X-Progress", export.ProgressText(j))
		w.Header().Set("Retry-After", strconv.Itoa(s.Export.RetryAfter(j)))
		if m != nil {
			// A partial manifest: the files ready so far (R65).
			presignedHeaders(w, links.urlsExpire, time.Time{})
			writeJSON(w, "application/json", exportStatus(w, j, http.StatusAccepted), m)
			return
		}
		w.WriteHeader(exportStatus(w, j, http.StatusAccepted))
	case bulk.StatusFailed:
		// R49: a failed job is a 5xx OperationOutcome. Its code is
		// "processing", not "exception": that one is in the transient
		// family (R50), which tells clients to keep polling.
		writeFHIR(w, exportStatus(w, j, http.StatusInternalServerError), fhir.Outcome("fatal", "processing", j.Failure))
	case bulk.StatusCompleted:
		s.writeManifest(w, r, j, m, links)
	default:
		writeError(w, r, s.Logger, fmt.Errorf("job %s in unexpected status %q", j.ID, j.Status))
	}
}

// pollJob reads the job a status poll is about, within the client's poll
// quota; on failure it has answered and ok is false.
func (s *Server) pollJob(w http.ResponseWriter, r *http.Request) (_ *Principal, _ *bulk.Job, ok bool) {
	p, err := s.principal(r)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return nil, nil, false
	}
	if s.Authz != nil {
		if err := s.Authz.limitPolls(r.Context(), p); err != nil {
			writeError(w, r, s.Logger, err)
			return nil, nil, false
		}
	}
	j, err := s.Export.Job(r.Context(), p.ClientID, r.PathValue("id"))
	if err != nil {
		writeError(w, r, s.Logger, err)
		return nil, nil, false
	}
	return p, j, true
}

// exportStatus is the HTTP status of an answer about j whose own status
// is code: code, or under separate-export-status 200 with code in
// X-Export-Status (R67).
func exportStatus(w http.ResponseWriter, j *bulk.Job, code int) int {
	if j.Request.SeparateStatus {
		w.Header().Set("X-Export-Status", strconv.Itoa(code)+" "+http.StatusText(code))
		return http.StatusOK
	}
	return code
}

// manifestLinks are the URLs one status answer lists: /files URLs, or
// presigned ones minted for this answer only (R79).
type manifestLinks struct {
	base          string
	j             *bulk.Job
	requiresToken bool
	urlsExpire    time.Time // when the presigned URLs of this answer expire
	presignErr    error     // the first presigning failure
	fileURL       func(key string) string
}

// manifestLinks returns the links of an answer to p about j. The manifest
// builders take a fileURL that cannot fail: the first presigning failure
// is kept in presignErr, the rest skipped, and the answer is that error.
func (s *Server) manifestLinks(r *http.Request, p *Principal, j *bulk.Job) *manifestLinks {
	base := s.base(r)
	l := &manifestLinks{base: base, j: j, requiresToken: s.Authz != nil}
	l.fileURL = func(key string) string { return base + "/files/" + key }
	if !s.PresignedManifests || s.Downloads == nil {
		return l
	}
	ttl := s.downloadTTL()
	l.requiresToken, l.urlsExpire = false, time.Now().Add(ttl)
	l.fileURL = func(key string) string {
		if l.presignErr != nil {
			return ""
		}
		if fileScopes(p, j, key) != nil {
			// A presigned URL would hand this token a file its scopes
			// do not cover (issue 15 item 8): it gets the
			// authenticated route, which answers 403.
			return base + "/files/" + key
		}
		u, err := s.Downloads.PresignGet(r.Context(), key, ttl)
		l.presignErr = err
		return u
	}
	return l
}

// pageURL is the URL of page n of the job's paged manifest.
func (l *manifestLinks) pageURL(n int) string {
	return l.base + "/jobs/" + l.j.ID + "/manifest/" + strconv.Itoa(n)
}

// writeManifest answers a poll of a completed job with its manifest: m
// (a paged manifest's page), or else the whole manifest built now. One
// too large to answer with presigned URLs lists /files URLs instead.
func (s *Server) writeManifest(w http.ResponseWriter, r *http.Request, j *bulk.Job, m *export.Manifest, links *manifestLinks) {
	urlsExpire := links.urlsExpire
	if m == nil {
		var err error
		if m, err = s.Export.Manifest(r.Context(), j, links.requiresToken, links.fileURL); err == nil {
			err = links.presignErr
		}
		if err == nil && !urlsExpire.IsZero() && s.MaxPresignedManifestBytes > 0 {
			if raw, _ := json.Marshal(m); len(raw) > s.MaxPresignedManifestBytes {
				// Too large to answer with presigned URLs: the same
				// files, as /files URLs that need the token.
				s.Logger.Info("manifest too large for presigned URLs; listing /files URLs", "job", j.ID, "bytes", len(raw), "files", len(m.Output))
				urlsExpire = time.Time{}
				m, err = s.Export.Manifest(r.Context(), j, s.Authz != nil, func(key string) string { return links.base + "/files/" + key })
			}
		}
		if err != nil {
			writeError(w, r, s.Logger, err)
			return
		}
	}
	// R52, R53: Expires is when the files stop being available, and
	// every URL works until then (R72): with presigned URLs, the
	// earlier of the job's expiry and theirs. A poll after that gets
	// fresh URLs (R80).
	w.Header().Set("Expires", j.ExpiresAt.UTC().Format(http.TimeFormat))
	presignedHeaders(w, urlsExpire, j.ExpiresAt)
	writeJSON(w, "application/json", exportStatus(w, j, http.StatusOK), m)
}

// presignedHeaders marks an answer listing presigned URLs (urlsExpire
// set): Expires is when they stop working, unless expires is earlier
// (zero: no other bound), and no cache keeps it (the URLs are
// credentials).
func presignedHeaders(w http.ResponseWriter, urlsExpire, expires time.Time) {
	if urlsExpire.IsZero() {
		return
	}
	if expires.IsZero() || urlsExpire.Before(expires) {
		expires = urlsExpire
	}
	w.Header().Set("Expires", expires.UTC().Format(http.TimeFormat))
	w.Header().Set("Cache-Control", "no-store")
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	p, err := s.principal(r)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	// The request's context may end before the workflow stops; give the
	// stop a bounded time of its own so files are deleted all the same.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Minute)
	defer cancel()
	if err := s.Export.Cancel(ctx, p.ClientID, r.PathValue("id")); err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	// R68.
	writeFHIR(w, http.StatusAccepted, fhir.Outcome("information", "informational", "Export cancelled; its files are deleted."))
}

// kickoffHeaders requires what the IG says a client SHOULD send (kick-off
// request headers, requirements 1.3): Accept application/fhir+json (or
// application/json, its synonym) and Prefer: respond-async. A server MAY
// refuse a request without them; the reference server and the Bulk Data
// test suites do, so Tranche does unless Server.LenientHeaders.
func kickoffHeaders(r *http.Request, prefer fhir.Prefer) error {
	if strings.TrimSpace(r.Header.Get("Accept")) == "" {
		return bulk.Errorf(bulk.EINVALID, "A kick-off needs the header Accept: application/fhir+json.")
	}
	if !prefer.RespondAsync {
		return bulk.Errorf(bulk.EINVALID, "A kick-off needs the header Prefer: respond-async (exports are asynchronous).")
	}
	return nil
}

// maxQueryBytes bounds a kick-off's query string (a POST body is bounded by
// MaxBodyBytes).
const maxQueryBytes = 64 << 10

func (s *Server) maxBody() int64 {
	if s.MaxBodyBytes > 0 {
		return s.MaxBodyBytes
	}
	// 10,000 patient values (fhir.MaxPatients) of 64-character ids, or
	// pretty-printed, need more than 1 MiB; API Gateway and Lambda take 6 MB.
	return 2 << 20
}

type ctxKey struct{}

// log logs one structured line per request with a request id.
func (s *Server) log(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var b [8]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK, plainJSON: wantsPlainJSON(r.Header.Get("Accept"))}
		rec.Header().Set("X-Request-Id", id)
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
		s.Logger.Info("http", "request_id", id, "method", r.Method, "path", r.URL.Path,
			"status", rec.status, "bytes", rec.bytes, "duration_ms", time.Since(start).Milliseconds())
	})
}

// recover turns a panic into a 500 OperationOutcome instead of a dropped
// connection.
func (s *Server) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				writeError(w, r, s.Logger, fmt.Errorf("panic: %v\n%s", v, debug.Stack()))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	// plainJSON: the client asked for application/json, which FHIR treats
	// as a synonym of application/fhir+json, so FHIR answers say that.
	plainJSON bool
	wrote     bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.wrote {
		return
	}
	r.wrote = true
	r.status = code
	if h := r.Header(); r.plainJSON && strings.HasPrefix(h.Get("Content-Type"), "application/fhir+json") {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	r.ResponseWriter.WriteHeader(code)
}

// wantsPlainJSON reports whether Accept names application/json and not
// application/fhir+json: then every FHIR response, errors included, is
// labelled application/json (FHIR R4 http.html#mime-type: a server SHALL
// answer in the requested JSON media type). Otherwise it is
// application/fhir+json.
func wantsPlainJSON(accept string) bool {
	if accept == "" {
		return false
	}
	plain := false
	for _, part := range strings.Split(accept, ",") {
		mt, params, _ := strings.Cut(strings.ToLower(strings.TrimSpace(part)), ";")
		if strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") && !strings.Contains(params, "q=0.") {
			continue // q=0: not acceptable
		}
		switch strings.TrimSpace(mt) {
		case "application/fhir+json", "application/json+fhir":
			return false
		case "application/json":
			plain = true
		}
	}
	return plain
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom keeps io.Copy on the sendfile path for file downloads.
func (r *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err := rf.ReadFrom(src)
		r.bytes += n
		return n, err
	}
	n, err := io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
	r.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
