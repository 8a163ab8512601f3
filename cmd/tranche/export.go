package main

// tranche export and tranche register: the Bulk Data client in the same
// binary (internal/client does the work; this file is flags and output).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/tranchehq/tranche/internal/client"
)

// exportSleep is the wait between status polls and retries; tests shorten
// it (the time seam of the export command).
var exportSleep = client.SleepContext

const exportUsage = `Usage: tranche export --fhir URL [auth] [flags]

Runs a FHIR Bulk Data export against any Bulk Data server and downloads it
into its own directory under --out: OUT/<transactionTime>/ holds the NDJSON
files (deleted/ and error/ files in subdirectories) and manifest.json, and
OUT/last-export.json records the export for the next --since-last.
Then the export is released: DELETE on its status URL tells the server it
may remove the files (--keep leaves them there until they expire). A
failed release is a warning: the export itself succeeded.

Authorization (pick one; none for an open server):
  --client FILE                    client file (from 'tranche register' or 'tranche serve')
  --key FILE --client-id ID        SMART Backend Services with a PEM or JWK private key
  --token T                        a bearer token, sent as is

Exit status: 0 exported, 1 the export failed, 2 bad command line.

Flags:
`

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func exportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, exportUsage)
		fs.PrintDefaults()
	}
	fhirBase := fs.String("fhir", "", "FHIR base URL (default: the client file's fhir_base_url)")
	clientPath := fs.String("client", "", "client file: client_id, token_url, fhir_base_url, private_jwk, scope")
	keyPath := fs.String("key", "", "private key file, PEM or JWK (RS384 or ES384), for SMART Backend Services")
	clientID := fs.String("client-id", "", "client id (with --key)")
	kid := fs.String("kid", "", "key id for a PEM key (default: its RFC 7638 thumbprint)")
	tokenURL := fs.String("token-url", "", "token endpoint (default: the client file's, or .well-known/smart-configuration)")
	scope := fs.String("scope", "", "requested scope (default: the client file's, or system/*.read)")
	token := fs.String("token", "", "bearer token to send as is")
	level := fs.String("level", "system", "export level: system, patient or group:ID")
	types := fs.String("type", "", "resource types, comma-separated (_type)")
	since := fs.String("since", "", "export resources changed after this FHIR instant (_since)")
	until := fs.String("until", "", "export resources changed before this FHIR instant (_until)")
	sinceLast := fs.Bool("since-last", false, "use the transactionTime of the last successful export in --out as _since")
	var typeFilters, patients, tokenOrigins multiFlag
	fs.Var(&typeFilters, "type-filter", "a _typeFilter query, e.g. Observation?status=final (repeatable)")
	fs.Var(&tokenOrigins, "token-origin", "also send the access token to files on this origin, e.g. https://files.example.org (repeatable; default: the FHIR server's origin only)")
	fs.Var(&patients, "patient", "a Patient id for the patient parameter (repeatable; implies --post)")
	post := fs.Bool("post", false, "kick off with POST and a Parameters body instead of GET")
	out := fs.String("out", "export", "export root directory")
	parallel := fs.Int("parallel", 4, "files downloaded at a time")
	resume := fs.String("resume", "", "resume the export with this status URL (no new kick-off)")
	cancelOnInterrupt := fs.Bool("cancel-on-interrupt", false, "on Ctrl-C, cancel the export on the server (DELETE)")
	keep := fs.Bool("keep", false, "leave the downloaded export on the server (default: release it with DELETE)")
	if err := parseFlags(fs, args, stderr, exportUsage); err != nil {
		return err
	}
	usage := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "tranche export: "+format+"\n", a...)
		return errUsage
	}
	if fs.NArg() > 0 {
		return usage("unexpected argument %q (every option is a flag: run 'tranche export -h')", fs.Arg(0))
	}
	auth, base, err := exportAuth(authFlags{
		fhir: *fhirBase, client: *clientPath, key: *keyPath, clientID: *clientID, kid: *kid,
		tokenURL: *tokenURL, scope: *scope, token: *token,
		note: func(format string, a ...any) { fmt.Fprintf(stderr, "tranche export: "+format+"\n", a...) },
	})
	if ue := (usageErr{}); errors.As(err, &ue) {
		return usage("%s", ue.msg)
	} else if err != nil {
		return err
	}
	req, bad := exportRequest(*level, *types, *since, *until, typeFilters, patients, *post)
	if bad != "" {
		return usage("%s", bad)
	}
	switch {
	case *since != "" && *sinceLast:
		return usage("give --since or --since-last, not both")
	case *resume != "" && (*sinceLast || *since != "" || *types != "" || len(typeFilters) > 0 || len(patients) > 0 || *post):
		return usage("--resume continues an export already started: kick-off flags do not apply")
	case *parallel < 1:
		return usage("--parallel must be at least 1")
	}
	// Before anything is sent: a kick-off whose files cannot be saved
	// would leave an export running on the server for nothing.
	cleanOut, err := checkOut(*out)
	if err != nil {
		return usage("%v; no export was started", err)
	}

	tty := isTerminal(stderr)
	ui := newExportUI(stderr, tty)
	defer ui.stop()
	logger := slog.New(slog.NewTextHandler(ui, &slog.HandlerOptions{Level: slog.LevelWarn}))
	hc := exportHTTPClient(*parallel)
	if bs, ok := auth.(*client.BackendServices); ok {
		bs.HTTP = hc
	}
	c := &client.Client{HTTP: hc, Base: base, Auth: auth, Sleep: exportSleep, Logger: logger, OnDownload: ui.download, TokenOrigins: tokenOrigins}
	exp := &client.Export{
		Client: c, Request: req, Out: *out, Parallel: *parallel, SinceLast: *sinceLast,
		Resume: *resume, CancelOnInterrupt: *cancelOnInterrupt, Keep: *keep,
		OnKickoff: ui.kickoff, OnPoll: ui.poll, OnManifest: ui.manifest, OnNote: ui.note,
	}
	sum, err := exp.Run(ctx)
	ui.stop()
	if err != nil {
		cleanOut()
		return err
	}
	printSummary(stdout, sum)
	return nil
}

// exportRequest is the kick-off the flags ask for, or why they are wrong.
func exportRequest(level, types, since, until string, typeFilters, patients []string, post bool) (client.Request, string) {
	req := client.Request{Since: since, Until: until, TypeFilters: typeFilters, Patients: patients, Post: post || len(patients) > 0}
	switch lv, id, _ := strings.Cut(level, ":"); lv {
	case "system":
		req.Level = client.LevelSystem
	case "patient":
		req.Level = client.LevelPatient
	case "group":
		if id == "" {
			return req, "--level group needs a Group id: --level group:ID"
		}
		req.Level, req.GroupID = client.LevelGroup, id
	default:
		return req, fmt.Sprintf("--level %q: want system, patient or group:ID", level)
	}
	if level != "group:"+req.GroupID && strings.Contains(level, ":") {
		return req, fmt.Sprintf("--level %q: only group takes an id", level)
	}
	for _, t := range strings.Split(types, ",") {
		if t = strings.TrimSpace(t); t != "" {
			req.Types = append(req.Types, t)
		}
	}
	for _, v := range []struct{ flag, value string }{{"--since", since}, {"--until", until}} {
		if v.value != "" {
			if _, err := time.Parse(time.RFC3339Nano, v.value); err != nil {
				return req, fmt.Sprintf("%s %q is not a FHIR instant (e.g. 2026-01-02T15:04:05Z)", v.flag, v.value)
			}
		}
	}
	return req, ""
}

type authFlags struct {
	fhir, client, key, clientID, kid, tokenURL, scope, token string
	// note, if set, is told what the flags override in the client file.
	note func(format string, a ...any)
}

// sameBase reports whether two FHIR base URLs name the same server and
// path (scheme and host in any case, a trailing slash or not).
func sameBase(a, b string) bool {
	norm := func(s string) string {
		u, err := url.Parse(strings.TrimRight(s, "/"))
		if err != nil {
			return s
		}
		u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
		return u.String()
	}
	return norm(a) == norm(b)
}

// exportAuth builds the TokenSource and FHIR base from the flags. Usage
// mistakes wrap errUsage.
func exportAuth(f authFlags) (client.TokenSource, string, error) {
	bad := func(format string, a ...any) error { return usageErr{fmt.Sprintf(format, a...)} }
	if f.token != "" && (f.client != "" || f.key != "" || f.clientID != "") {
		return nil, "", bad("--token replaces --client, --key and --client-id: give one way to authorize")
	}
	base := f.fhir
	if f.token != "" {
		if base == "" {
			return nil, "", bad("--fhir URL is required")
		}
		return client.StaticToken(f.token), base, nil
	}
	bs := &client.BackendServices{ClientID: f.clientID, TokenURL: f.tokenURL, Scope: f.scope}
	if f.client != "" {
		cf, err := client.LoadClientFile(f.client)
		if err != nil {
			return nil, "", err
		}
		// --fhir wins over the file's fhir_base_url, and then the file's
		// token_url (the other server's) is not used either: the token
		// endpoint is discovered from --fhir unless --token-url names it.
		otherServer := base != "" && cf.FHIRBaseURL != "" && !sameBase(base, cf.FHIRBaseURL)
		if base == "" {
			base = cf.FHIRBaseURL
		}
		if bs.ClientID == "" {
			bs.ClientID = cf.ClientID
		}
		if bs.TokenURL == "" && !otherServer {
			bs.TokenURL = cf.TokenURL
		}
		if otherServer && f.note != nil {
			what := "its token_url is not used: the token endpoint comes from " + strings.TrimRight(base, "/") + "/.well-known/smart-configuration"
			if f.tokenURL != "" {
				what = "the token endpoint is --token-url " + f.tokenURL
			}
			f.note("--fhir %s overrides the client file's fhir_base_url %s; %s", base, cf.FHIRBaseURL, what)
		}
		if bs.Scope == "" {
			bs.Scope = cf.Scope
		}
		if f.key == "" {
			k, err := cf.Key()
			if err != nil {
				return nil, "", fmt.Errorf("client file %s: %w", f.client, err)
			}
			if k == nil {
				return nil, "", bad("client file %s has no private_jwk: give --key FILE", f.client)
			}
			bs.Key = k
		}
	}
	if base == "" {
		return nil, "", bad("--fhir URL is required (or a client file with fhir_base_url)")
	}
	if f.key != "" {
		raw, err := os.ReadFile(f.key)
		if err != nil {
			return nil, "", err
		}
		k, err := client.ParseKey(raw, f.kid)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", f.key, err)
		}
		bs.Key = k
		if bs.ClientID == "" {
			return nil, "", bad("--key needs --client-id (or --client FILE)")
		}
	} else if f.clientID != "" && f.client == "" {
		return nil, "", bad("--client-id needs --key FILE")
	}
	if bs.Key == nil {
		return nil, base, nil // an open server
	}
	bs.FHIRBase = base
	return bs, base, nil
}

// checkOut makes sure the export root out can be written: it creates it
// if missing and writes and removes a file there. The error names --out
// and why. cleanOut removes the directories checkOut created, if they are
// still empty (for a failed export).
func checkOut(out string) (cleanOut func(), err error) {
	if out == "" {
		out = "export"
	}
	// The directories MkdirAll will create, deepest first.
	var created []string
	for d := filepath.Clean(out); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || !errors.Is(err, os.ErrNotExist) {
			break
		}
		created = append(created, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	cleanOut = func() {
		for _, d := range created {
			if os.Remove(d) != nil {
				return
			}
		}
	}
	why := func(err error) error {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("%s %s: %w", pe.Op, pe.Path, pe.Err)
		}
		return err
	}
	if st, err := os.Stat(out); err == nil && !st.IsDir() {
		return func() {}, fmt.Errorf("--out %s is a file: give a directory to download the export into", out)
	}
	if err := os.MkdirAll(out, 0o750); err != nil {
		cleanOut()
		return func() {}, fmt.Errorf("--out %s: cannot create the directory (%v)", out, why(err))
	}
	f, err := os.CreateTemp(out, ".tranche-write-check-*")
	if err != nil {
		cleanOut()
		return func() {}, fmt.Errorf("--out %s: cannot write files there (%v)", out, why(err))
	}
	f.Close()
	os.Remove(f.Name())
	return cleanOut, nil
}

// parseFlags parses args. A mistake is one line naming the flag and what
// it accepts, then the command's synopsis (the first line of help) and
// where the rest is, instead of every flag's help; -h and --help print the
// whole help. It returns nil, flag.ErrHelp (exit 0) or errUsage (exit 2).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer, help string) error {
	full := fs.Usage
	if full == nil {
		full = func() {
			fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
			fs.PrintDefaults()
		}
	}
	out := fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = full
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		full()
		return err
	}
	synopsis, _, _ := strings.Cut(help, "\n")
	fmt.Fprintf(stderr, "%s: %s\n%s\nRun '%s -h' for every flag.\n", fs.Name(), explainFlagError(fs, err), synopsis, fs.Name())
	return errUsage
}

var (
	flagUndefined = regexp.MustCompile(`^flag provided but not defined: -+(.+)$`)
	flagNoValue   = regexp.MustCompile(`^flag needs an argument: -+(.+)$`)
	flagBadValue  = regexp.MustCompile(`^invalid (?:boolean )?value ("(?:[^"\\]|\\.)*") for (?:flag )?-+([^:]+): (.*)$`)
)

// explainFlagError rewrites the flag package's error as the mistake and
// what would be right: an unknown flag with the nearest known one, a
// missing value with what the flag takes, an invalid value with what is
// accepted.
func explainFlagError(fs *flag.FlagSet, err error) string {
	msg := err.Error()
	if m := flagUndefined.FindStringSubmatch(msg); m != nil {
		s := fmt.Sprintf("unknown flag --%s", m[1])
		if near := nearestFlag(fs, m[1]); near != "" {
			s += fmt.Sprintf(" (did you mean --%s?)", near)
		}
		return s
	}
	if m := flagNoValue.FindStringSubmatch(msg); m != nil {
		if f := fs.Lookup(m[1]); f != nil {
			_, usage := flag.UnquoteUsage(f)
			return fmt.Sprintf("--%s needs a value: %s", m[1], usage)
		}
		return fmt.Sprintf("--%s needs a value", m[1])
	}
	if m := flagBadValue.FindStringSubmatch(msg); m != nil {
		name, value, cause := m[2], m[1], m[3]
		want := cause
		if f := fs.Lookup(name); f != nil {
			if g, ok := f.Value.(flag.Getter); ok {
				switch g.Get().(type) {
				case bool:
					want = "want true or false"
				case int, int64, uint, uint64:
					want = "want a whole number"
				case float64:
					want = "want a number"
				case time.Duration:
					want = "want a duration such as 90s, 5m or 1h30m"
				}
				if cause == "value out of range" {
					want = cause + ": " + want
				}
			}
			_, usage := flag.UnquoteUsage(f)
			want += " (" + usage + ")"
		}
		return fmt.Sprintf("--%s %s: %s", name, value, want)
	}
	return msg
}

// nearestFlag is the defined flag closest to name (one edit away, two for
// names of five letters or more, or name a prefix of it), or "".
func nearestFlag(fs *flag.FlagSet, name string) string {
	best, bestD := "", 2
	if len(name) >= 5 {
		bestD = 3
	}
	fs.VisitAll(func(f *flag.Flag) {
		d := editDistance(strings.ToLower(name), f.Name)
		if strings.HasPrefix(f.Name, name) && len(name) >= 3 {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

// editDistance counts the insertions, deletions, substitutions and
// swaps of neighbours that turn a into b (optimal string alignment).
func editDistance(a, b string) int {
	rows := make([][]int, len(a)+1)
	for i := range rows {
		rows[i] = make([]int, len(b)+1)
		rows[i][0] = i
	}
	for j := range rows[0] {
		rows[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(rows[i-1][j]+1, rows[i][j-1]+1, rows[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d = min(d, rows[i-2][j-2]+1)
			}
			rows[i][j] = d
		}
	}
	return rows[len(a)][len(b)]
}

// usageErr is a command-line mistake; errors.Is(err, errUsage) holds.
type usageErr struct{ msg string }

func (e usageErr) Error() string        { return e.msg }
func (e usageErr) Is(target error) bool { return target == errUsage }

// exportHTTPClient keeps a connection per parallel download alive and
// bounds the wait for response headers; bodies are watched for stalls by
// the client.
func exportHTTPClient(parallel int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = parallel + 2
	tr.ResponseHeaderTimeout = 2 * time.Minute
	return &http.Client{Transport: tr}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// exportUI shows progress: one rewritten status line on a terminal, plain
// lines otherwise. It is also the io.Writer of warnings, which it prints
// above the status line.
type exportUI struct {
	w   io.Writer
	tty bool

	mu        sync.Mutex
	start     time.Time
	phase     string
	progress  string
	files     int
	done      int
	bytes     int64
	lastShown string
	ticker    *time.Ticker
	quit      chan struct{}
	stopped   bool
}

func newExportUI(w io.Writer, tty bool) *exportUI {
	u := &exportUI{w: w, tty: tty, start: time.Now(), phase: "kick-off", progress: "sending"}
	if tty {
		u.ticker = time.NewTicker(200 * time.Millisecond)
		u.quit = make(chan struct{})
		go func() {
			for {
				select {
				case <-u.quit:
					return
				case <-u.ticker.C:
					u.mu.Lock()
					u.redraw()
					u.mu.Unlock()
				}
			}
		}()
	}
	return u
}

// Write prints a log line above the status line.
func (u *exportUI) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.clear()
	n, err := u.w.Write(p)
	u.redraw()
	return n, err
}

func (u *exportUI) line(format string, a ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.clear()
	fmt.Fprintf(u.w, format+"\n", a...)
	u.redraw()
}

func (u *exportUI) clear() {
	if u.tty && u.lastShown != "" {
		fmt.Fprint(u.w, "\r\033[K")
		u.lastShown = ""
	}
}

// redraw draws the status line (terminal only); u.mu is held.
func (u *exportUI) redraw() {
	if !u.tty || u.stopped {
		return
	}
	el := time.Since(u.start).Round(time.Second)
	var s string
	switch u.phase {
	case "download":
		rate := ""
		if secs := time.Since(u.start).Seconds(); secs > 0 {
			rate = fmt.Sprintf(" · %s/s", formatBytes(int64(float64(u.bytes)/secs)))
		}
		s = fmt.Sprintf("downloading: %d/%d files · %s%s · %s", u.done, u.files, formatBytes(u.bytes), rate, el)
	default:
		s = fmt.Sprintf("%s: %s · %s", u.phase, u.progress, el)
	}
	if w, _, err := term.GetSize(int(u.w.(*os.File).Fd())); err == nil && w > 1 && len(s) >= w {
		s = s[:w-1]
	}
	fmt.Fprint(u.w, "\r\033[K"+s)
	u.lastShown = s
}

func (u *exportUI) stop() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stopped {
		return
	}
	if u.ticker != nil {
		u.ticker.Stop()
		close(u.quit)
	}
	u.clear()
	u.stopped = true
}

func (u *exportUI) note(msg string) { u.line("%s", msg) }

func (u *exportUI) kickoff(statusURL string, resumed bool) {
	u.mu.Lock()
	u.phase, u.progress = "exporting", "waiting for the server"
	u.mu.Unlock()
	if resumed {
		u.line("resuming export %s", statusURL)
	} else {
		u.line("export started: %s", statusURL)
	}
}

func (u *exportUI) poll(st client.PollStatus) {
	text := st.Progress
	if text == "" {
		text = "in progress"
	}
	if st.Err != nil {
		text = fmt.Sprintf("retrying in %s: %v", st.Wait.Round(time.Millisecond), st.Err)
	}
	u.mu.Lock()
	u.progress = text
	changed := !u.tty && text != u.lastShown
	if changed {
		u.lastShown = text
	}
	u.mu.Unlock()
	if changed {
		u.line("exporting: %s (%s)", text, st.Elapsed.Round(time.Second))
	}
}

func (u *exportUI) manifest(m *client.Manifest, dir string) {
	n := len(m.Output) + len(m.Deleted) + len(m.Error)
	u.mu.Lock()
	u.phase, u.files, u.start = "download", n, time.Now()
	u.mu.Unlock()
	u.line("export ready: %d files (transactionTime %s) → %s", n, m.TransactionTime, dir)
}

func (u *exportUI) download(p client.DownloadProgress) {
	u.mu.Lock()
	u.done, u.bytes = p.Done, p.Bytes
	u.mu.Unlock()
	if f := p.File; f != nil && !u.tty {
		switch {
		case f.Err != nil:
			u.line("failed %s: %v", f.Path, f.Err)
		case f.Skipped:
			u.line("have   %s (%d resources, %s)", f.Path, f.Resources, formatBytes(f.Bytes))
		default:
			u.line("saved  %s (%d resources, %s) [%d/%d]", f.Path, f.Resources, formatBytes(f.Bytes), p.Done, p.Files)
		}
	}
}

func printSummary(w io.Writer, s *client.Summary) {
	d := s.Download
	var total int64
	types := make([]string, 0, len(d.Resources))
	for t, n := range d.Resources {
		types = append(types, t)
		total += n
	}
	sort.Strings(types)
	rate := ""
	if secs := s.DownloadTime.Seconds(); secs > 0 {
		rate = fmt.Sprintf(", %s/s", formatBytes(int64(float64(d.Bytes)/secs)))
	}
	fmt.Fprintf(w, "Exported %d resources in %d files (%s) in %s (download %s%s).\n",
		total, len(d.Files), formatBytes(d.Bytes), s.Elapsed.Round(time.Millisecond), s.DownloadTime.Round(time.Millisecond), rate)
	fmt.Fprintf(w, "  directory        %s\n", s.Dir)
	fmt.Fprintf(w, "  transactionTime  %s (the next --since-last)\n", s.TransactionTime)
	switch {
	case s.Released:
		fmt.Fprintf(w, "  released         %s (DELETE: the server may remove its files)\n", s.StatusURL)
	case s.ReleaseErr != nil:
		fmt.Fprintf(w, "  not released     %s: DELETE failed; the files stay on the server until they expire\n", s.StatusURL)
	default:
		fmt.Fprintf(w, "  kept             %s (--keep: on the server until it expires)\n", s.StatusURL)
	}
	if s.Since != "" {
		fmt.Fprintf(w, "  since            %s\n", s.Since)
	}
	if d.Skipped > 0 {
		fmt.Fprintf(w, "  resumed          %d files were already downloaded\n", d.Skipped)
	}
	width := 0
	for _, t := range types {
		width = max(width, len(t))
	}
	for _, t := range types {
		fmt.Fprintf(w, "  %-*s  %d\n", width, t, d.Resources[t])
	}
	if d.Deleted > 0 || slices.ContainsFunc(d.Files, func(f client.FileResult) bool { return f.Kind == client.KindDeleted }) {
		fmt.Fprintf(w, "  deleted          %d (in %s)\n", d.Deleted, filepath.Join(s.Dir, "deleted"))
	}
	if d.Errors > 0 {
		fmt.Fprintf(w, "  errors           %d OperationOutcomes (in %s)\n", d.Errors, filepath.Join(s.Dir, "error"))
	}
}

func formatBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

const registerUsage = `Usage: tranche register --fhir URL --initial-token T (--jwks-uri URL | --generate-key FILE) [flags]

Registers a SMART Backend Services client (RFC 7591, private_key_jwt) at the
server's registration_endpoint (.well-known/smart-configuration, or
[base]/register) and writes a client file for 'tranche export --client'.

Flags:
`

func registerCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("register", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, registerUsage)
		fs.PrintDefaults()
	}
	fhirBase := fs.String("fhir", "", "FHIR base URL")
	initial := fs.String("initial-token", "", "initial access token for the registration endpoint (RFC 7591 §3)")
	jwksURI := fs.String("jwks-uri", "", "register this JWKS URL (where your public keys are served)")
	genKey := fs.String("generate-key", "", "generate an ES384 key pair; write the private JWK to FILE (0600) and register the public key")
	keyPath := fs.String("key", "", "with --jwks-uri: the private key (PEM or JWK) to store in the client file")
	kid := fs.String("kid", "", "with --key: the key id (default: the JWK's kid, or the RFC 7638 thumbprint)")
	outClient := fs.String("out-client", "client.json", "client file to write")
	name := fs.String("name", "tranche export", "client_name")
	scope := fs.String("scope", "system/*.read", "scope to register")
	if err := parseFlags(fs, args, stderr, registerUsage); err != nil {
		return err
	}
	usage := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "tranche register: "+format+"\n", a...)
		return errUsage
	}
	switch {
	case fs.NArg() > 0:
		return usage("unexpected argument %q", fs.Arg(0))
	case *fhirBase == "":
		return usage("--fhir URL is required")
	case *initial == "":
		return usage("--initial-token is required")
	case (*jwksURI == "") == (*genKey == ""):
		return usage("give one of --jwks-uri URL and --generate-key FILE")
	case *keyPath != "" && *jwksURI == "":
		return usage("--key goes with --jwks-uri (--generate-key makes its own key)")
	}
	if _, err := os.Stat(*outClient); err == nil {
		return fmt.Errorf("%s exists: it may hold another client's key; choose another --out-client or remove it", *outClient)
	}
	rr := client.RegisterRequest{FHIRBase: *fhirBase, InitialToken: *initial, ClientName: *name, Scope: *scope, JWKSURI: *jwksURI}
	var key *client.Key
	switch {
	case *genKey != "":
		if _, err := os.Stat(*genKey); err == nil {
			return fmt.Errorf("%s exists: refusing to overwrite a key", *genKey)
		}
		k, err := client.GenerateES384()
		if err != nil {
			return err
		}
		jwk, err := k.PrivateJWK()
		if err != nil {
			return err
		}
		raw, err := jsonIndent(jwk)
		if err != nil {
			return err
		}
		if err := client.WriteFileAtomic(*genKey, raw, 0o600); err != nil {
			return err
		}
		key = k
		rr.JWKS = []client.JWK{k.PublicJWK()}
	case *keyPath != "":
		raw, err := os.ReadFile(*keyPath)
		if err != nil {
			return err
		}
		if key, err = client.ParseKey(raw, *kid); err != nil {
			return fmt.Errorf("%s: %w", *keyPath, err)
		}
	}
	reg, err := client.Register(ctx, rr)
	if err != nil {
		return err
	}
	cf := &client.ClientFile{ClientID: reg.ClientID, TokenURL: reg.TokenEndpoint, FHIRBaseURL: strings.TrimRight(*fhirBase, "/"), Scope: *scope}
	if key != nil {
		jwk, err := key.PrivateJWK()
		if err != nil {
			return err
		}
		if cf.PrivateJWK, err = json.Marshal(jwk); err != nil {
			return err
		}
	}
	if err := cf.Save(*outClient); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Registered client %s at %s.\nWrote %s (keep it private: it holds the private key).\n", reg.ClientID, *fhirBase, *outClient)
	if key == nil {
		fmt.Fprintf(stdout, "The client file has no private key: export with --client %s --key FILE.\n", *outClient)
	} else {
		fmt.Fprintf(stdout, "Export with: tranche export --client %s\n", *outClient)
	}
	return nil
}

func jsonIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
