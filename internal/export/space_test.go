package export_test

import (
	"context"
	"errors"
	"io/fs"
	"syscall"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
	"github.com/tranchehq/tranche/internal/local/fsobj"
	"github.com/tranchehq/tranche/internal/mem"
)

func spaceFixture(t *testing.T, cfg export.Config) (*fixture, *fsobj.Store) {
	t.Helper()
	objs, err := fsobj.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, cfg, objs)
	f.svc.Space = objs
	f.put(t, "Patient", 50)
	return f, objs
}

// TestKickoffOutputBudget: while the files of unexpired jobs use up the
// budget a kick-off is refused as too many requests (429, R39) with a
// Retry-After hint of when the next export expires; expired jobs are
// purged first, so once they are the kick-off is accepted.
func TestKickoffOutputBudget(t *testing.T) {
	cfg := export.DefaultConfig()
	cfg.Retention = 2 * time.Minute
	f, objs := spaceFixture(t, cfg)
	ctx := context.Background()
	req := bulk.ExportRequest{Level: bulk.LevelSystem}
	held, err := f.svc.Kickoff(ctx, "c1", req)
	if err != nil {
		t.Fatal(err)
	}
	if j := f.wait(t, held.ID); j.Status != bulk.StatusCompleted {
		t.Fatalf("status = %s (%s), want completed", j.Status, j.Failure)
	}
	used, _ := objs.Usage()
	if used == 0 {
		t.Fatal("the export holds no bytes")
	}
	objs.SetLimit(used)

	_, err = f.svc.Kickoff(ctx, "c2", req)
	if code := bulk.ErrorCode(err); code != bulk.ETOOMANYREQUESTS {
		t.Fatalf("Kickoff() with the budget used up = %v, want ETOOMANYREQUESTS", err)
	}
	var hint interface{ RetryAfter() time.Duration }
	if !errors.As(err, &hint) || hint.RetryAfter() != cfg.Retention {
		t.Errorf("Kickoff() error %v: want a Retry-After hint of %s, when the held export expires", err, cfg.Retention)
	}
	if msg := bulk.ErrorMessage(err); !containsAny(msg, "no space left for export files") {
		t.Errorf("message %q does not say why", msg)
	}
	if _, err := f.svc.Jobs.GetJob(ctx, held.ID); err != nil {
		t.Errorf("the unexpired job is gone: %v", err)
	}

	f.now = f.now.Add(cfg.Retention + time.Second)
	j, err := f.svc.Kickoff(ctx, "c2", req)
	if err != nil {
		t.Fatalf("Kickoff() once the holder expired = %v, want it purged and the kick-off accepted", err)
	}
	if _, err := f.svc.Jobs.GetJob(ctx, held.ID); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("expired job after the kick-off: %v, want purged", err)
	}
	if keys, _ := objs.List(ctx, held.ID+"/"); len(keys) != 0 {
		t.Errorf("expired job's files left: %v", keys)
	}
	f.wait(t, j.ID)
}

// noSpaceObjects is a store whose every write fails as on a full disk,
// with the bare error (not translated to ENOSPACE).
type noSpaceObjects struct{ bulk.ObjectStore }

func (s noSpaceObjects) Create(ctx context.Context, key string) (bulk.ObjectWriter, error) {
	w, err := s.ObjectStore.Create(ctx, key)
	return noSpaceWriter{w}, err
}

type noSpaceWriter struct{ bulk.ObjectWriter }

func (noSpaceWriter) Write([]byte) (int, error) {
	return 0, &fs.PathError{Op: "write", Path: "/var/lib/tranche/files/x", Err: syscall.ENOSPC}
}

// TestExportNoSpace: an export whose files do not fit, on a full disk or
// past the budget, fails with a status that says so (R49), not as an
// internal error, and its files are removed.
func TestExportNoSpace(t *testing.T) {
	for _, tc := range []struct {
		name string
		objs func(t *testing.T) (bulk.ObjectStore, export.Space)
	}{
		{"ENOSPC", func(t *testing.T) (bulk.ObjectStore, export.Space) {
			return noSpaceObjects{mem.NewObjectStore()}, nil
		}},
		{"budget crossed", func(t *testing.T) (bulk.ObjectStore, export.Space) {
			objs, err := fsobj.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			objs.SetLimit(300) // a few Patients' worth
			return objs, objs
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, space := tc.objs(t)
			f := newFixture(t, export.DefaultConfig(), objs)
			f.svc.Space = space
			f.put(t, "Patient", 50)
			ctx := context.Background()
			j, err := f.svc.Kickoff(ctx, "c1", bulk.ExportRequest{Level: bulk.LevelSystem})
			if err != nil {
				t.Fatal(err)
			}
			j = f.wait(t, j.ID)
			if j.Status != bulk.StatusFailed || j.Failure != export.NoSpaceFailure {
				t.Fatalf("job = %s %q, want failed with %q", j.Status, j.Failure, export.NoSpaceFailure)
			}
			if keys, _ := objs.List(ctx, j.ID+"/"); len(keys) != 0 {
				t.Errorf("files left: %v", keys)
			}
			if space != nil {
				if used, _ := space.Usage(); used != 0 {
					t.Errorf("the failed job still holds %d bytes", used)
				}
			}
		})
	}
}
