package test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/api"
	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
	"github.com/tranchehq/tranche/internal/local/fsobj"
	"github.com/tranchehq/tranche/internal/workflow"
)

// gatedObjects lets the first n files through, then blocks every further
// Create until the caller's context ends: the server "dies" mid-export at a
// point the test chooses, with some items checkpointed and one file open.
type gatedObjects struct {
	bulk.ObjectStore
	mu      sync.Mutex
	n       int
	blocked chan struct{}
	once    sync.Once
}

func (g *gatedObjects) Create(ctx context.Context, key string) (bulk.ObjectWriter, error) {
	g.mu.Lock()
	g.n--
	pass := g.n >= 0
	g.mu.Unlock()
	if pass {
		return g.ObjectStore.Create(ctx, key)
	}
	g.once.Do(func() { close(g.blocked) })
	<-ctx.Done()
	return nil, ctx.Err()
}

// stack is the local wiring with a chosen object store, as app.NewLocal
// builds it.
type stack struct {
	local *app.Local
	wf    *workflow.Local
	http  *httptest.Server
}

func openStack(t *testing.T, dir string, cfg exportConfig, wrap func(bulk.ObjectStore) bulk.ObjectStore) *stack {
	t.Helper()
	c := testConfig(t)
	c.DataDir = dir
	c.Export = cfg
	db, err := app.OpenStore(c)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fsobj.New(filepath.Join(dir, "files"))
	if err != nil {
		t.Fatal(err)
	}
	objs := wrap(fs)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := export.NewService(db.Jobs(), db.Resources(), objs, cfg, logger)
	wf, err := workflow.NewLocal(workflow.Steps{Svc: svc}, logger)
	if err != nil {
		t.Fatal(err)
	}
	svc.Workflow = wf
	srv := &api.Server{Export: svc, Resources: db.Resources(), Objects: fs, Logger: logger}
	hs := httptest.NewServer(srv.Handler())
	if err := svc.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &stack{local: &app.Local{DB: db, Objects: fs, Service: svc, Workflow: wf}, wf: wf, http: hs}
}

func (s *stack) close() {
	s.http.Close()
	s.wf.Close()
	_ = s.local.DB.Close()
}

type exportConfig = export.Config

// TestRestartMidExport stops the server while an export is half written and
// starts it again on the same data dir: the job resumes and its output holds
// every resource exactly once (issue: "A restart in the middle of an export
// does not lose or duplicate output").
func TestRestartMidExport(t *testing.T) {
	src := generated(t, 40)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, src)
	ds := readDataset(t, src, importTime)

	ec := cfg.Export
	ec.MaxFileResources = 300
	ec.ItemResources = 500
	ec.MaxConcurrency = 2
	// Every item checkpoints as soon as it has written something, so the
	// restart lands between checkpoints of the same item (the cursor loop).
	ec.ItemBudget = time.Nanosecond
	for _, level := range []struct{ name, path string }{
		{"system", "/$export"},
		{"group", "/Group/group-all/$export"},
	} {
		t.Run(level.name, func(t *testing.T) {
			gate := &gatedObjects{n: 7, blocked: make(chan struct{})}
			first := openStack(t, cfg.DataDir, ec, func(o bulk.ObjectStore) bulk.ObjectStore { gate.ObjectStore = o; return gate })
			s := &server{t: t, URL: first.http.URL}
			statusURL := s.kickoff("GET", level.path, nil)
			select {
			case <-gate.blocked:
			case <-time.After(time.Minute):
				t.Fatal("export never reached the gate")
			}
			res := s.do("GET", statusURL, nil)
			if res.Status != 202 {
				t.Fatalf("status before restart = %d, want 202", res.Status)
			}
			var done, total int
			if _, err := fmt.Sscanf(res.Header.Get("X-Progress")[strings.Index(res.Header.Get("X-Progress"), "(")+1:], "%d of %d", &done, &total); err != nil || total < 2 || done >= total {
				t.Fatalf("X-Progress before restart = %q: want a job part-way through several items", res.Header.Get("X-Progress"))
			}
			t.Logf("restarting at %d of %d work items", done, total)
			first.close() // the process goes away mid-export

			second := openStack(t, cfg.DataDir, ec, func(o bulk.ObjectStore) bulk.ObjectStore { return o })
			defer second.close()
			s.URL = second.http.URL
			statusURL = second.http.URL + statusURL[len(first.http.URL):]
			m := s.wait(statusURL)
			tx, _ := time.Parse(time.RFC3339Nano, m.TransactionTime)
			f := filter{txTimeUpTo: tx}
			if level.name == "group" {
				f.patients = ds.groups["group-all"]
			}
			got := keys(t, s.download(m.Output, false))
			if diff := cmp.Diff(ds.expect(f), got); diff != "" {
				t.Errorf("after restart, exported set mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
