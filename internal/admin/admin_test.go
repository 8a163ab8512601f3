package admin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/admin"
	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/client"
	"github.com/tranchehq/tranche/internal/config"
	"github.com/tranchehq/tranche/internal/importer"
	"github.com/tranchehq/tranche/internal/local/bolt"
	"github.com/tranchehq/tranche/internal/mem"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// serveSocket serves h on dir's admin socket until the test ends.
func serveSocket(t *testing.T, dir string, h http.Handler) {
	t.Helper()
	ln, err := admin.Listen(dir)
	if err != nil {
		t.Fatalf("Listen(%s): %v", dir, err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
}

// TestListen: the socket is 0600 from the start, a live server's socket is
// not taken over, a crashed server's is replaced, and Close removes it.
func TestListen(t *testing.T) {
	dir := t.TempDir()
	path := admin.SocketPath(dir)
	if _, err := admin.Dial(context.Background(), dir); !errors.Is(err, admin.ErrNoServer) {
		t.Errorf("Dial with no socket = %v, want ErrNoServer", err)
	}

	// A crashed server leaves its socket behind.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := admin.Dial(context.Background(), dir); !errors.Is(err, admin.ErrNoServer) {
		t.Errorf("Dial on a stale socket = %v, want ErrNoServer", err)
	}

	ln, err := admin.Listen(dir)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want a socket with 0600", fi.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".s*")); len(left) > 0 {
		t.Errorf("Listen left %v behind", left)
	}
	srv := &http.Server{Handler: admin.Handler(&admin.Service{Info: &admin.Info{PID: 42}}, discard)}
	go func() { _ = srv.Serve(ln) }()
	c, err := admin.Dial(context.Background(), dir)
	if err != nil || c.Info.PID != 42 {
		t.Fatalf("Dial = %+v, %v; want the server's info", c, err)
	}
	c.Close()
	if _, err := admin.Listen(dir); !errors.Is(err, admin.ErrServing) {
		t.Errorf("second Listen = %v, want ErrServing", err)
	}
	srv.Close() // closes ln
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket after Close: %v, want it removed", err)
	}

	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Listen(dir); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file = %v, want it refused", err)
	}
	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if ln, err := admin.Listen(open); err == nil {
		ln.Close()
		t.Error("Listen in a world-writable data dir succeeded, want it refused")
	}
}

// failingClients fails with text that must not reach the socket's client.
type failingClients struct{ bulk.ClientStore }

func (failingClients) ListClients(context.Context, func(*bulk.Client) error) error {
	return errors.New("disk says /secret/path is broken")
}

func (failingClients) DeleteClient(_ context.Context, id string) error {
	return bulk.Errorf(bulk.ENOTFOUND, "Client %s not found.", id)
}

// TestErrors: application errors keep their code and message over the
// socket; internal ones arrive without their text.
func TestErrors(t *testing.T) {
	dir := t.TempDir()
	serveSocket(t, dir, admin.Handler(&admin.Service{Clients: failingClients{}}, discard))
	c, err := admin.Dial(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.ListClients(context.Background())
	if bulk.ErrorCode(err) != bulk.EINTERNAL || strings.Contains(err.Error(), "secret") {
		t.Errorf("ListClients = %v, want an internal error without its text", err)
	}
	if err := c.RemoveClient(context.Background(), "nobody"); bulk.ErrorCode(err) != bulk.ENOTFOUND || bulk.ErrorMessage(err) != "Client nobody not found." {
		t.Errorf("RemoveClient(nobody) = %v, want ENOTFOUND with its message", err)
	}
	_, err = c.Import(context.Background(), admin.ImportRequest{Paths: []string{"relative.ndjson"}}, nil)
	if bulk.ErrorCode(err) != bulk.EINVALID {
		t.Errorf("Import of a relative path = %v, want EINVALID", err)
	}
}

// TestStoreStats runs the same store through the bulk.StatsSource of the
// in-memory and the embedded adapters.
func TestStoreStats(t *testing.T) {
	ctx := context.Background()
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rs := []*bulk.Resource{
		{Type: "Patient", ID: "p1", LastUpdated: day, Body: []byte(`{"resourceType":"Patient","id":"p1"}`), Patients: []string{"p1"}},
		{Type: "Patient", ID: "p2", LastUpdated: day, Body: []byte(`{"resourceType":"Patient","id":"p2"}`), Patients: []string{"p2"}},
		{Type: "Patient", ID: "p3", LastUpdated: day, Body: []byte(`{"resourceType":"Patient","id":"p3"}`), Patients: []string{"p3"}},
		{Type: "Observation", ID: "o1", LastUpdated: day.Add(time.Hour), Body: []byte(`{"resourceType":"Observation","id":"o1"}`), Patients: []string{"p1"}},
		{Type: "Group", ID: "g-b", LastUpdated: day, Body: []byte(`{"resourceType":"Group","id":"g-b"}`), Members: []string{"p1", "p2", "p3"}},
		{Type: "Group", ID: "g-a", LastUpdated: day, Body: []byte(`{"resourceType":"Group","id":"g-a"}`), Members: []string{"p2"}},
		{Type: "Group", ID: "g-empty", LastUpdated: day, Body: []byte(`{"resourceType":"Group","id":"g-empty"}`)},
		{Type: "Group", ID: "g-gone", LastUpdated: day, Body: []byte(`{"resourceType":"Group","id":"g-gone"}`), Members: []string{"p1"}},
	}
	deletes := []struct {
		ref bulk.Ref
		at  time.Time
	}{
		{bulk.Ref{Type: "Patient", ID: "p3"}, day.Add(2 * time.Hour)},
		{bulk.Ref{Type: "Group", ID: "g-gone"}, day.Add(3 * time.Hour)}, // the latest write
		{bulk.Ref{Type: "Condition", ID: "never-stored"}, day},
	}
	want := &bulk.StoreStats{
		Resources:   map[string]int64{"Patient": 2, "Observation": 1, "Group": 3},
		Tombstones:  map[string]int64{"Patient": 1, "Group": 1, "Condition": 1},
		Groups:      []bulk.GroupStats{{ID: "g-a", Members: 1}, {ID: "g-b", Members: 3}, {ID: "g-empty", Members: 0}},
		LastUpdated: day.Add(3 * time.Hour),
	}
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) (bulk.ResourceStore, bulk.StatsSource)
	}{
		{"mem", func(t *testing.T) (bulk.ResourceStore, bulk.StatsSource) {
			s := mem.NewResourceStore(4)
			return s, s
		}},
		{"bolt", func(t *testing.T) (bulk.ResourceStore, bulk.StatsSource) {
			db, err := bolt.Open(filepath.Join(t.TempDir(), bolt.FileName), bolt.Options{Shards: 4, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db.Resources(), db.Resources()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, src := tc.store(t)
			empty, err := src.StoreStats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(empty.Resources)+len(empty.Tombstones)+len(empty.Groups) != 0 || !empty.LastUpdated.IsZero() {
				t.Errorf("StoreStats of an empty store = %+v", empty)
			}
			if err := store.Put(ctx, rs); err != nil {
				t.Fatal(err)
			}
			for _, d := range deletes {
				if err := store.Delete(ctx, d.ref, d.at); err != nil {
					t.Fatal(err)
				}
			}
			got, err := src.StoreStats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "bolt" && got.Bytes == 0 {
				t.Error("bolt StoreStats().Bytes = 0, want the file's size")
			}
			got.Bytes = 0
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("StoreStats() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStatsReadOnly: a stopped server's store is read without the write
// lock, so two readers do not wait for each other, and a missing store is
// ENOTFOUND rather than a new empty file.
func TestStatsReadOnly(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	if _, _, err := app.OpenAdmin(cfg, true); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Fatalf("OpenAdmin(read-only) with no store = %v, want ENOTFOUND", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, bolt.FileName)); !os.IsNotExist(err) {
		t.Errorf("read-only open created the store: %v", err)
	}
	db, err := app.OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	s1, db1, err := app.OpenAdmin(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	defer db1.Close()
	s2, db2, err := app.OpenAdmin(cfg, true)
	if err != nil {
		t.Fatalf("second read-only open: %v", err)
	}
	defer db2.Close()
	for _, s := range []*admin.Service{s1, s2} {
		if _, err := s.Stats(context.Background()); err != nil {
			t.Errorf("Stats: %v", err)
		}
	}
	if _, err := s1.AddClient(context.Background(), admin.AddClientRequest{Metadata: []byte(`{}`)}); err == nil {
		t.Error("AddClient on a read-only store succeeded")
	}
}

// gatedWorkflow holds every execution until release is closed: a job
// kicked off before has its transactionTime, and reads nothing yet.
type gatedWorkflow struct {
	bulk.Workflow
	release chan struct{}
	errs    chan error
}

func (g *gatedWorkflow) Start(_ context.Context, id string) error {
	go func() {
		<-g.release
		if err := g.Workflow.Start(context.Background(), id); err != nil {
			g.errs <- err
		}
	}()
	return nil
}

// TestImportWhileServing is issue 16 item 2: an import through the running
// server's socket is in the next export and not in one kicked off before
// it, even when that export reads the store only after the import is done:
// the plan's range ends at the job's transactionTime, and the server's
// clock stamps the imported versions after it (R55).
func TestImportWhileServing(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.DataDir, cfg.Shards, cfg.Demo, cfg.PurgeEvery = t.TempDir(), 2, false, 0 // no watchdog: executions wait at the gate
	cfg.Auth.Open, cfg.Auth.MaxPollsPerMinute = true, 0

	write := func(name, prefix string, n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"resourceType":"Observation","id":"%s-%d","status":"final","meta":{"lastUpdated":"2020-01-01T00:00:00Z"}}`+"\n", prefix, i)
		}
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	db, err := app.OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := importer.Import(ctx, db.Resources(), importer.Options{}, write("old.ndjson", "old", 5)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	l, err := app.NewLocal(ctx, cfg, discard)
	if err != nil {
		t.Fatal(err)
	}
	gate := &gatedWorkflow{Workflow: l.Service.Workflow, release: make(chan struct{}), errs: make(chan error, 4)}
	l.Service.Workflow = gate
	hs := httptest.NewServer(l.Handler)
	t.Cleanup(func() { hs.Close(); l.Close() }) // after the socket's cleanup: the store closes last
	serveSocket(t, cfg.DataDir, admin.Handler(l.Admin, discard))
	released := sync.OnceFunc(func() { close(gate.release) })
	t.Cleanup(released)

	c := &client.Client{HTTP: hs.Client(), Base: hs.URL, Sleep: func(ctx context.Context, d time.Duration) error {
		return client.SleepContext(ctx, min(d, 5*time.Millisecond))
	}}
	req := client.Request{Level: client.LevelSystem, Types: []string{"Observation"}}
	before, err := c.Kickoff(ctx, req)
	if err != nil {
		t.Fatal(err)
	}

	ac, err := admin.Dial(ctx, cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	var progress []importer.Progress
	rep, err := ac.Import(ctx, admin.ImportRequest{Paths: []string{write("new.ndjson", "new", 7)}}, func(p importer.Progress) { progress = append(progress, p) })
	if err != nil || rep.Resources["Observation"] != 7 || rep.Files != 1 {
		t.Fatalf("Import over the socket = %+v, %v; want 7 Observations from 1 file", rep, err)
	}
	if len(progress) == 0 || progress[len(progress)-1].Resources != 7 {
		t.Errorf("Import progress = %+v, want it streamed, ending at 7 resources", progress)
	}

	after, err := c.Kickoff(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	released()
	ids := func(statusURL string) map[string]bool {
		t.Helper()
		sum, err := (&client.Export{Client: c, Out: t.TempDir(), Resume: statusURL, Keep: true}).Run(ctx)
		if err != nil {
			t.Fatalf("export %s: %v", statusURL, err)
		}
		out := map[string]bool{}
		for _, v := range bulktest.ReadVersions(t, sum.Dir) {
			out[v.Key] = true
		}
		return out
	}
	wantIDs := func(prefixes ...string) map[string]bool {
		out := map[string]bool{}
		for _, p := range prefixes {
			n := map[string]int{"old": 5, "new": 7}[p]
			for i := range n {
				out[fmt.Sprintf("Observation/%s-%d", p, i)] = true
			}
		}
		return out
	}
	if diff := cmp.Diff(wantIDs("old"), ids(before)); diff != "" {
		t.Errorf("export kicked off before the import (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantIDs("old", "new"), ids(after)); diff != "" {
		t.Errorf("export kicked off after the import (-want +got):\n%s", diff)
	}
	select {
	case err := <-gate.errs:
		t.Errorf("workflow Start: %v", err)
	default:
	}

	st, err := ac.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Resources["Observation"] != 12 || st.Jobs[bulk.StatusCompleted] != 2 || st.LastUpdated.IsZero() {
		t.Errorf("Stats after the exports = %+v, want 12 Observations, 2 completed jobs and a last import", st)
	}
}
