package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

// JWKSFetcher fetches the key sets that clients publish at their jwks_uri
// (SMART Backend Services, "Registering a client": jwks_uri is "strongly
// preferred" because it allows key rotation). The zero value is usable; set
// fields before first use. It is safe for concurrent use.
//
// A jwks_uri is a URL a client chose, and fetching it from inside the
// deployment is a server-side request forgery risk: on AWS the instance
// metadata service (169.254.169.254) is one hop away. So the fetcher:
//
//   - requires https (plain http only to loopback, with AllowLoopback);
//   - refuses loopback, private (RFC 1918, fc00::/7), link-local
//     (169.254.0.0/16, fe80::/10), CGNAT (100.64.0.0/10), unspecified,
//     multicast, reserved and documentation addresses, also in IPv4-mapped,
//     NAT64 and 6to4 forms. The check runs on the address actually dialed,
//     in the dialer's Control hook, so a name that resolves differently at
//     check and dial time (DNS rebinding) cannot slip past it; URL hosts
//     that are IP literals are also checked before any dialing;
//   - follows at most 3 redirects, each held to the same rules;
//   - ignores proxy settings (a proxy would dial on our behalf unchecked);
//   - bounds each fetch by Timeout and MaxBytes, and sends
//     Accept: application/json.
//
// Fetched sets are cached per URL no longer than the response's
// Cache-Control allows (requirements 6.5 step 4.3, R110): max-age (less Age)
// is honoured up to MaxTTL, and a response without max-age is cached for
// DefaultTTL. A set served no-store or no-cache, like a failure, is
// reused for RefreshInterval only: a jwks_uri is fetched at most once per
// RefreshInterval whatever it says. Concurrent requests for one URL share
// one fetch.
type JWKSFetcher struct {
	// Client supplies the TLS configuration (tests trust their test
	// server's certificate through its Transport's RootCAs). Its Transport
	// must be an *http.Transport or nil; the fetcher uses a clone whose
	// dialer, proxy, redirect policy and timeouts are its own, so the
	// address checks apply whatever Client says.
	Client *http.Client
	// AllowLoopback allows 127.0.0.0/8 and ::1, and then plain http to
	// them, for local testing. Never set it in a deployment.
	AllowLoopback bool
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// Timeout bounds one fetch, redirects included (default 5 s).
	Timeout time.Duration
	// MaxBytes bounds a response body (default 64 KiB).
	MaxBytes int64
	// DefaultTTL is how long a response without max-age is cached (default
	// 5 min); MaxTTL caps every cache lifetime (default 1 h).
	DefaultTTL, MaxTTL time.Duration
	// RefreshInterval is the least time between two fetches of one URL
	// that a token request may force because its kid is unknown (key
	// rotation without re-registration), and how long a failed fetch is
	// remembered, so nobody can make the server hammer a URL (default
	// 10 s).
	RefreshInterval time.Duration

	once    sync.Once
	client  *http.Client
	initErr error

	mu    sync.Mutex
	cache map[string]*jwksEntry
}

// jwksEntry is what the fetcher knows about one URL.
type jwksEntry struct {
	result  *jwksResult // nil when nothing may be reused
	expires time.Time   // result is fresh until then
	fetched time.Time   // when the last fetch finished
	running *jwksCall   // the fetch in progress, if any
}

// jwksResult is a fetched key set or the failure to fetch it.
type jwksResult struct {
	raw  []byte
	keys []publicKey
	err  error
}

type jwksCall struct {
	done   chan struct{}
	result *jwksResult
}

// Defaults of the JWKSFetcher fields.
const (
	DefaultFetchTimeout    = 5 * time.Second
	DefaultFetchMaxBytes   = 64 << 10
	DefaultJWKSTTL         = 5 * time.Minute
	DefaultJWKSMaxTTL      = time.Hour
	DefaultRefreshInterval = 10 * time.Second

	maxRedirects   = 3
	maxCachedURLs  = 4096
	maxHeaderBytes = 16 << 10
)

// Fetch returns the key set document at rawURL, from the cache while it is
// fresh. Errors are EINVALID with a client-safe message that says what is
// wrong with the URL or its response.
func (f *JWKSFetcher) Fetch(ctx context.Context, rawURL string) ([]byte, error) {
	r, _, err := f.get(ctx, rawURL, false)
	if err != nil {
		return nil, err
	}
	return r.raw, nil
}

// get returns the cached or fetched key set for rawURL and whether it was
// fetched for this call. With refresh, a fresh cached set is fetched again
// unless the last fetch finished less than RefreshInterval ago.
func (f *JWKSFetcher) get(ctx context.Context, rawURL string, refresh bool) (*jwksResult, bool, error) {
	f.mu.Lock()
	if f.cache == nil {
		f.cache = make(map[string]*jwksEntry)
	}
	e := f.cache[rawURL]
	if e == nil {
		e = &jwksEntry{}
		f.cache[rawURL] = e
	}
	if c := e.running; c != nil {
		f.mu.Unlock()
		select {
		case <-c.done:
			return c.result, true, c.result.err
		case <-ctx.Done():
			return nil, false, bulk.Wrapf(ctx.Err(), bulk.EINVALID, "The jwks_uri fetch was cancelled.")
		}
	}
	now := f.now()
	if r := e.result; r != nil && now.Before(e.expires) &&
		(!refresh || r.err != nil || now.Sub(e.fetched) < f.refreshInterval()) {
		f.mu.Unlock()
		return r, false, r.err
	}
	c := &jwksCall{done: make(chan struct{})}
	e.running = c
	f.mu.Unlock()

	// The fetch is not tied to the first caller's context: others may be
	// waiting for it. Timeout bounds it.
	r, ttl := f.fetch(context.WithoutCancel(ctx), rawURL)
	c.result = r

	f.mu.Lock()
	now = f.now()
	e.running, e.fetched = nil, now
	e.result, e.expires = nil, time.Time{}
	if r.err != nil || ttl <= 0 {
		// A failure, or a set served no-store or no-cache: kept for
		// RefreshInterval, so that no client can make the server fetch
		// its jwks_uri more often than that (one fetch per token request
		// otherwise).
		ttl = f.refreshInterval()
	}
	if ttl > 0 {
		e.result, e.expires = r, now.Add(ttl)
	}
	f.evictLocked(now)
	f.mu.Unlock()
	close(c.done)
	return r, true, r.err
}

// evictLocked drops idle entries whose result has expired and that no
// longer throttle refreshes, once the cache holds many URLs.
func (f *JWKSFetcher) evictLocked(now time.Time) {
	if len(f.cache) <= maxCachedURLs {
		return
	}
	for u, e := range f.cache {
		if e.running == nil && !now.Before(e.expires) && now.Sub(e.fetched) >= f.refreshInterval() {
			delete(f.cache, u)
		}
	}
}

// fetch GETs rawURL and parses the key set leniently. It returns how long
// the response may be cached.
func (f *JWKSFetcher) fetch(ctx context.Context, rawURL string) (*jwksResult, time.Duration) {
	fail := func(err error) (*jwksResult, time.Duration) { return &jwksResult{err: err}, 0 }
	client, err := f.httpClient()
	if err != nil {
		return fail(err)
	}
	u, err := f.checkURL(rawURL)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(bulk.Wrapf(err, bulk.EINVALID, "The jwks_uri is not a valid URL."))
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fail(f.describe(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail(bulk.Errorf(bulk.EINVALID, "The jwks_uri returned HTTP %d, not 200.", resp.StatusCode))
	}
	limit := f.maxBytes()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fail(f.describe(err))
	}
	if int64(len(body)) > limit {
		return fail(bulk.Errorf(bulk.EINVALID, "The jwks_uri response is larger than %d bytes.", limit))
	}
	keys, err := parseKeySet(body, false)
	if err != nil {
		return fail(bulk.Wrapf(err, bulk.EINVALID, "The jwks_uri response is invalid: %v.", err))
	}
	return &jwksResult{raw: body, keys: keys}, f.cacheLifetime(resp.Header)
}

// cacheLifetime returns how long a response may be cached (RFC 9111 §4.2.1,
// as a private cache): 0 for no-store or no-cache, max-age less Age, else
// DefaultTTL; never more than MaxTTL.
func (f *JWKSFetcher) cacheLifetime(h http.Header) time.Duration {
	ttl, maxAge := f.defaultTTL(), false
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(arg, `"`), 10, 64)
				if err != nil || n < 0 {
					return 0 // an invalid max-age makes the response stale
				}
				ttl, maxAge = time.Duration(min(n, int64(f.maxTTL()/time.Second)))*time.Second, true
			}
		}
	}
	if maxAge {
		if age, err := strconv.ParseInt(h.Get("Age"), 10, 64); err == nil && age > 0 {
			ttl -= time.Duration(min(age, int64(ttl/time.Second))) * time.Second
		}
	}
	return min(ttl, f.maxTTL())
}

// checkURL parses rawURL and applies the scheme and host rules. Errors are
// EINVALID with a client-safe message.
func (f *JWKSFetcher) checkURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return nil, bulk.Errorf(bulk.EINVALID, "The jwks_uri must be an absolute https URL.")
	}
	if u.User != nil {
		return nil, bulk.Errorf(bulk.EINVALID, "The jwks_uri must not contain credentials.")
	}
	host := u.Hostname()
	addr, literal := netip.ParseAddr(host)
	switch u.Scheme {
	case "https":
	case "http":
		loopback := strings.EqualFold(host, "localhost") || (literal == nil && addr.Unmap().IsLoopback())
		if !f.AllowLoopback || !loopback {
			return nil, bulk.Errorf(bulk.EINVALID, "The jwks_uri must use https.")
		}
	default:
		return nil, bulk.Errorf(bulk.EINVALID, "The jwks_uri must use https.")
	}
	if literal == nil && !f.allowed(addr) {
		return nil, errDisallowedAddr
	}
	return u, nil
}

// errDisallowedAddr does not name the address: a client must not learn how
// the server's resolver sees internal names.
var errDisallowedAddr = bulk.Errorf(bulk.EINVALID, "The jwks_uri resolves to a loopback, private, link-local or otherwise non-public address, which the server does not fetch from.")

// blockedAddrError is the dial hook's refusal.
type blockedAddrError struct{ addr string }

func (e *blockedAddrError) Error() string { return "refusing to dial non-public address " + e.addr }

// describe turns a transport error into a client-safe one that wraps it.
func (f *JWKSFetcher) describe(err error) error {
	var blocked *blockedAddrError
	var be *bulk.Error
	var ne net.Error
	switch {
	case errors.As(err, &blocked):
		return bulk.Wrapf(err, bulk.EINVALID, "%s", errDisallowedAddr.Message)
	case errors.As(err, &be):
		return be // a redirect refused by checkRedirect
	case errors.As(err, &ne) && ne.Timeout():
		return bulk.Wrapf(err, bulk.EINVALID, "The jwks_uri did not respond within %v.", f.timeout())
	}
	return bulk.Wrapf(err, bulk.EINVALID, "The jwks_uri could not be fetched.")
}

// allowed reports whether the fetcher may connect to a.
func (f *JWKSFetcher) allowed(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() {
		return f.AllowLoopback
	}
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false // unspecified, multicast, link-local, broadcast, RFC 1918, fc00::/7
	}
	for _, p := range blockedPrefixes {
		if p.Contains(a) {
			return false
		}
	}
	// Addresses that carry an IPv4 address: judge the IPv4 address.
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a), nat64Local.Contains(a):
			return f.allowed(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(a):
			return f.allowed(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	return true
}

var (
	blockedPrefixes = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
		netip.MustParsePrefix("100.64.0.0/10"),   // CGNAT (RFC 6598)
		netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
		netip.MustParsePrefix("192.0.2.0/24"),    // documentation
		netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
		netip.MustParsePrefix("198.51.100.0/24"), // documentation
		netip.MustParsePrefix("203.0.113.0/24"),  // documentation
		netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
		netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated)
		netip.MustParsePrefix("100::/64"),        // discard
		netip.MustParsePrefix("2001::/32"),       // Teredo: an obfuscated IPv4 inside
		netip.MustParsePrefix("2001:db8::/32"),   // documentation
		netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
	}
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
)

// control is the dialer's Control hook: it runs after name resolution, on
// the address about to be connected.
func (f *JWKSFetcher) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !f.allowed(ap.Addr()) {
		return &blockedAddrError{addr: address}
	}
	return nil
}

// checkRedirect holds each redirect to the rules of the first URL.
func (f *JWKSFetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return bulk.Errorf(bulk.EINVALID, "The jwks_uri redirected more than %d times.", maxRedirects)
	}
	if _, err := f.checkURL(req.URL.String()); err != nil {
		return bulk.Wrapf(err, bulk.EINVALID, "The jwks_uri redirected to a URL the server does not fetch from. %s", bulk.ErrorMessage(err))
	}
	return nil
}

// httpClient builds the fetcher's client once.
func (f *JWKSFetcher) httpClient() (*http.Client, error) {
	f.once.Do(func() {
		var tr *http.Transport
		switch t := f.Client; {
		case t == nil || t.Transport == nil:
			tr = http.DefaultTransport.(*http.Transport).Clone()
		default:
			base, ok := t.Transport.(*http.Transport)
			if !ok {
				f.initErr = bulk.Errorf(bulk.EINTERNAL, "JWKSFetcher.Client.Transport must be an *http.Transport, not %T.", t.Transport)
				return
			}
			tr = base.Clone()
		}
		dialer := &net.Dialer{Timeout: f.timeout(), KeepAlive: 30 * time.Second, Control: f.control}
		tr.Proxy = nil
		tr.DialContext = dialer.DialContext
		tr.DialTLSContext = nil
		tr.Dial, tr.DialTLS = nil, nil //nolint:staticcheck // cleared so they cannot bypass DialContext
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{}
		}
		tr.TLSClientConfig = tr.TLSClientConfig.Clone()
		tr.TLSClientConfig.MinVersion = max(tr.TLSClientConfig.MinVersion, tls.VersionTLS12)
		tr.TLSClientConfig.InsecureSkipVerify = false
		tr.ResponseHeaderTimeout = f.timeout()
		tr.MaxResponseHeaderBytes = maxHeaderBytes
		tr.MaxIdleConnsPerHost = 2
		f.client = &http.Client{Transport: tr, CheckRedirect: f.checkRedirect, Timeout: f.timeout()}
	})
	return f.client, f.initErr
}

func (f *JWKSFetcher) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *JWKSFetcher) timeout() time.Duration    { return orDefault(f.Timeout, DefaultFetchTimeout) }
func (f *JWKSFetcher) defaultTTL() time.Duration { return orDefault(f.DefaultTTL, DefaultJWKSTTL) }
func (f *JWKSFetcher) maxTTL() time.Duration     { return orDefault(f.MaxTTL, DefaultJWKSMaxTTL) }
func (f *JWKSFetcher) refreshInterval() time.Duration {
	return orDefault(f.RefreshInterval, DefaultRefreshInterval)
}

func (f *JWKSFetcher) maxBytes() int64 {
	if f.MaxBytes > 0 {
		return f.MaxBytes
	}
	return DefaultFetchMaxBytes
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
