// Package client is a FHIR Bulk Data Access client (HL7 Bulk Data IG v2,
// with the v3 additions that matter to a client): kick-off, status polling
// that honours Retry-After and backs off, parallel resumable downloads, and
// SMART Backend Services authorization. It works against any Bulk Data
// server, not only Tranche, and imports nothing from the server packages.
//
// The flow is
//
//	statusURL, err := c.Kickoff(ctx, req)
//	m, err := c.Poll(ctx, statusURL, onProgress)
//	res, err := c.Download(ctx, m, dir, parallel)
//
// and Export (export.go) runs it for the `tranche export` command, with the
// --since-last watermark, --resume, cancel on interrupt and the release
// (DELETE) of a downloaded export.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one Bulk Data server. The zero value of every field but
// Base is usable; a Client is safe for concurrent use once configured.
type Client struct {
	// HTTP sends the requests (default http.DefaultClient). Its
	// CheckRedirect is wrapped so that Authorization never follows a
	// redirect to another origin.
	HTTP *http.Client
	// Base is the FHIR base URL, e.g. https://fhir.example.org/r4.
	Base string
	// Auth supplies bearer tokens; nil sends none (an open server).
	Auth TokenSource
	// Now and Sleep are the time seams (default time.Now and a
	// context-aware sleep).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger receives retries and other debug detail (default: discard).
	Logger *slog.Logger
	// MaxRetries bounds consecutive transient failures (network errors,
	// 429, 5xx, transient OperationOutcomes) of one request before it
	// fails (default 8).
	MaxRetries int
	// MinBackoff and MaxBackoff bound the exponential backoff used when a
	// server sends no Retry-After (defaults 1 s and 1 min).
	MinBackoff, MaxBackoff time.Duration
	// StallTimeout ends and retries a download that received no bytes for
	// this long (default 2 min): a stuck connection never hangs an export.
	StallTimeout time.Duration
	// OnDownload, when set, is told of download progress: bytes as they
	// arrive and each finished file. Calls are serialized.
	OnDownload func(DownloadProgress)
	// TokenOrigins are origins (scheme://host[:port]) other than Base's
	// that may receive the access token for requiresAccessToken files.
	// By default the token goes to the FHIR server's origin only: a
	// manifest listing files elsewhere does not get it sent there.
	TokenOrigins []string
}

const (
	defaultMaxRetries = 8
	defaultMinBackoff = time.Second
	defaultMaxBackoff = time.Minute
)

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	return SleepContext(ctx, d)
}

// SleepContext waits d or until ctx is done.
func SleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (c *Client) maxRetries() int {
	if c.MaxRetries > 0 {
		return c.MaxRetries
	}
	return defaultMaxRetries
}

// backoff is the wait before retry n (0-based) when the server gave no
// Retry-After: MinBackoff doubling up to MaxBackoff.
func (c *Client) backoff(n int) time.Duration {
	lo, hi := c.MinBackoff, c.MaxBackoff
	if lo <= 0 {
		lo = defaultMinBackoff
	}
	if hi <= 0 {
		hi = defaultMaxBackoff
	}
	d := lo
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// httpClient returns c.HTTP with the redirect policy of SafeRedirect.
func (c *Client) httpClient() *http.Client {
	base := c.HTTP
	if base == nil {
		base = http.DefaultClient
	}
	hc := *base
	hc.CheckRedirect = SafeRedirect(base.CheckRedirect)
	return &hc
}

// SafeRedirect wraps a CheckRedirect function (nil: Go's default of ten
// redirects) so that the Authorization header is dropped when a redirect
// leaves the origin (scheme, host and port) of the original request. Go's
// own rule keeps it for the same host name on another port and for
// subdomains; a bearer token for the FHIR server must reach nothing else
// (Bulk Data IG, file request; SMART Backend Services).
func SafeRedirect(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) > 0 && !sameOrigin(req.URL, via[0].URL) {
			req.Header.Del("Authorization")
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(hostPort(a), hostPort(b))
}

func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			port = "443"
		default:
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// Error is a request the server answered with an error. Text is the
// OperationOutcome's issue text when the body was one, else the start of
// the body.
type Error struct {
	Method, URL string
	Status      int
	Text        string
	// Codes are the OperationOutcome issue codes, if any.
	Codes []string
	// Transient is true for 429, bare 5xx and outcomes with a transient
	// issue code: the request may be retried.
	Transient bool
	// RetryAfter is the server's Retry-After, if any.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.Text != "" {
		msg += ": " + e.Text
	}
	return msg
}

// StatusCode returns the HTTP status of an *Error in err's chain, or 0.
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// OperationOutcome is the part of a FHIR OperationOutcome the client reads.
type OperationOutcome struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Severity    string `json:"severity"`
		Code        string `json:"code"`
		Diagnostics string `json:"diagnostics"`
		Details     struct {
			Text string `json:"text"`
		} `json:"details"`
	} `json:"issue"`
}

// Text joins the issues' details.text (or diagnostics).
func (o *OperationOutcome) Text() string {
	var parts []string
	for _, is := range o.Issue {
		t := is.Details.Text
		if t == "" {
			t = is.Diagnostics
		}
		if t == "" {
			t = is.Code
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, "; ")
}

// transientCodes are the IssueType codes of the transient branch: a status
// or kick-off failure with one of them may be retried (requirements 3.3).
var transientCodes = map[string]bool{
	"transient": true, "lock-error": true, "no-store": true, "exception": true,
	"timeout": true, "incomplete": true, "throttled": true,
}

// responseError reads an error response (closing its body) into an *Error.
func (c *Client) responseError(res *http.Response) *Error {
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	e := &Error{Method: res.Request.Method, URL: res.Request.URL.String(), Status: res.StatusCode}
	e.RetryAfter, _ = parseRetryAfter(res.Header.Get("Retry-After"), c.now())
	var oo OperationOutcome
	isOO := json.Unmarshal(body, &oo) == nil && oo.ResourceType == "OperationOutcome"
	if isOO {
		e.Text = oo.Text()
		for _, is := range oo.Issue {
			e.Codes = append(e.Codes, is.Code)
			if transientCodes[is.Code] {
				e.Transient = true
			}
		}
	} else {
		e.Text = strings.TrimSpace(string(body))
		if len(e.Text) > 300 {
			e.Text = e.Text[:300] + "…"
		}
	}
	switch {
	case res.StatusCode == http.StatusTooManyRequests, res.StatusCode == http.StatusRequestTimeout:
		e.Transient = true
	case res.StatusCode >= 500 && !isOO:
		// A proxy or gateway that is not FHIR-aware (502, 503, 504 …).
		e.Transient = true
	}
	return e
}

// parseRetryAfter reads delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, 24*3600)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// isTransientNetErr reports errors worth retrying: the connection failed,
// not the request's context.
func isTransientNetErr(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	return true
}

// authorize sets the bearer token on req when c has a TokenSource.
func (c *Client) authorize(ctx context.Context, req *http.Request) error {
	if c.Auth == nil {
		return nil
	}
	tok, err := c.Auth.Token(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// invalidate drops a cached token the server refused (401), once.
func (c *Client) invalidate(res *http.Response) bool {
	if res.StatusCode != http.StatusUnauthorized || c.Auth == nil {
		return false
	}
	if inv, ok := c.Auth.(interface{ Invalidate() }); ok {
		inv.Invalidate()
		return true
	}
	return false
}

// do sends a request built by build, retrying transient failures with
// Retry-After or exponential backoff. accept reports the statuses that
// count as an answer (returned with the body open); any other status is an
// *Error. Network errors are retried only when retryNet is set: a kick-off
// that may have reached the server is not sent twice, and a wrong URL
// fails at once.
func (c *Client) do(ctx context.Context, build func() (*http.Request, error), auth, retryNet bool, accept func(int) bool) (*http.Response, error) {
	hc := c.httpClient()
	retried401 := false
	for attempt := 0; ; attempt++ {
		req, err := build()
		if err != nil {
			return nil, err
		}
		req = req.WithContext(ctx)
		if auth {
			if err := c.authorize(ctx, req); err != nil {
				return nil, err
			}
		}
		res, err := hc.Do(req)
		var wait time.Duration
		if err != nil {
			if !retryNet || !isTransientNetErr(ctx, err) || attempt >= c.maxRetries() {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, err
			}
			wait = c.backoff(attempt)
			c.logger().Warn("request failed; retrying", "method", req.Method, "url", req.URL.String(), "err", err, "wait", wait)
		} else if accept(res.StatusCode) {
			return res, nil
		} else {
			if auth && !retried401 && c.invalidate(res) {
				res.Body.Close()
				retried401 = true
				attempt--
				continue
			}
			e := c.responseError(res)
			if !e.Transient || attempt >= c.maxRetries() {
				return nil, e
			}
			wait = e.RetryAfter
			if wait == 0 {
				wait = c.backoff(attempt)
			}
			c.logger().Warn("server asked to retry", "method", req.Method, "url", req.URL.String(), "status", e.Status, "text", e.Text, "wait", wait)
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// origin is u's scheme://host[:port], lowercased, with the default port
// left out; "" for a URL that is not absolute.
func origin(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Scheme == "" || p.Host == "" {
		return ""
	}
	scheme, host := strings.ToLower(p.Scheme), strings.ToLower(p.Hostname())
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		host = "localhost" // one machine: localhost and 127.0.0.1 are the same server
	}
	port := p.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host
}

// mayReceiveToken reports whether the access token may be sent to u: it
// is on the FHIR server's origin or one of TokenOrigins.
func (c *Client) mayReceiveToken(u string) bool {
	o := origin(u)
	if o == "" {
		return false
	}
	if o == origin(c.Base) {
		return true
	}
	for _, t := range c.TokenOrigins {
		if origin(t) == o {
			return true
		}
	}
	return false
}
