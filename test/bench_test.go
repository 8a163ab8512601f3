package test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
	"github.com/tranchehq/tranche/internal/fhir/defs"
	"github.com/tranchehq/tranche/internal/generate"
	"github.com/tranchehq/tranche/internal/local/fsobj"
	"github.com/tranchehq/tranche/internal/workflow"
)

// BenchmarkSystemExport measures the export engine alone (plan, items,
// NDJSON files on disk; no HTTP) over the embedded store, for CPU profiles:
//
//	TRANCHE_BENCH_PATIENTS=1000 go test -run '^$' -bench SystemExport -cpuprofile cpu.out ./test/
//	go tool pprof -top test.test cpu.out
func BenchmarkSystemExport(b *testing.B) {
	patients := 1000 // about 100k resources
	if v, err := strconv.Atoi(os.Getenv("TRANCHE_BENCH_PATIENTS")); err == nil && v > 0 {
		patients = v
	}
	benchExport(b, generated(b, patients), bulk.ExportRequest{Level: bulk.LevelSystem})
}

// BenchmarkExportVersions is a Patient-level export of the same generated
// cohort in each FHIR release, each in a store of its own (issue 17):
//
//	go test -run '^$' -bench ExportVersions ./test/
func BenchmarkExportVersions(b *testing.B) {
	patients := 300
	if v, err := strconv.Atoi(os.Getenv("TRANCHE_BENCH_PATIENTS")); err == nil && v > 0 {
		patients = v
	}
	for _, v := range defs.Versions() {
		b.Run(string(v), func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "gen")
			if _, err := generate.Dir(context.Background(), generate.Options{Patients: patients, Seed: 7, Base: genBase, FHIRVersion: v}, dir, nil); err != nil {
				b.Fatal(err)
			}
			benchExport(b, dir, bulk.ExportRequest{Level: bulk.LevelPatient})
		})
	}
}

// benchExport imports src into a store of its own and times exports of
// req through the engine.
func benchExport(b *testing.B, src string, req bulk.ExportRequest) {
	cfg := testConfig(b)
	cfg.Export = export.DefaultConfig()
	importInto(b, cfg, importTime, src)
	dir := cfg.DataDir
	db, err := app.OpenStore(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	objs, err := fsobj.New(filepath.Join(dir, "files"))
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	model, err := app.StoreModel(context.Background(), db.Resources(), "")
	if err != nil {
		b.Fatal(err)
	}
	svc := export.NewService(db.Jobs(), db.Resources(), objs, cfg.Export, logger)
	svc.FHIR = model
	wf, err := workflow.NewLocal(workflow.Steps{Svc: svc}, logger)
	if err != nil {
		b.Fatal(err)
	}
	defer wf.Close()
	svc.Workflow = wf
	ctx := context.Background()
	var resources int64
	b.ResetTimer()
	for b.Loop() {
		j, err := svc.Kickoff(ctx, "bench", req)
		if err != nil {
			b.Fatal(err)
		}
		for !j.Status.Terminal() {
			time.Sleep(time.Millisecond) // poll interval
			if j, err = db.Jobs().GetJob(ctx, j.ID); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		progress, _ := db.Jobs().Progress(ctx, j.ID)
		resources = 0
		for _, p := range progress {
			for _, f := range p.Files {
				resources += f.Count
			}
		}
		_ = objs.DeletePrefix(ctx, j.ID+"/")
		b.StartTimer()
	}
	b.ReportMetric(float64(resources)*float64(b.N)/b.Elapsed().Seconds(), "resources/s")
}

// BenchmarkStatusPoll measures an authenticated status poll of a finished
// job over HTTP, for CPU profiles of the poll path.
func BenchmarkStatusPoll(b *testing.B) {
	src := generated(b, 20)
	cfg := testConfig(b)
	importInto(b, cfg, importTime, src)
	s := startServer(b, cfg)
	status := s.kickoff("GET", "/$export", nil)
	s.wait(status)
	tok, err := s.tokens.Token(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", status, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
}
