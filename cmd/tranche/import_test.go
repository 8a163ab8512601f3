package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/config"
)

// importRun runs `tranche import` and returns its exit status, stdout and
// stderr.
func importRun(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(ctx, append([]string{"import"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// countsRE reads the summary line of an import.
var countsRE = regexp.MustCompile(`Imported (\d+) resources from \d+ files: (\d+) new, (\d+) replaced, (\d+) unchanged`)

func importCounts(t *testing.T, out string) (total, new, replaced, unchanged string) {
	t.Helper()
	m := countsRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no import summary in:\n%s", out)
	}
	return m[1], m[2], m[3], m[4]
}

// TestImportExport is issue 16 item 1: `tranche export` into a directory,
// then `tranche import` of that directory, imports what the export's
// manifest lists, once each, and skips what is not FHIR with a note.
// Importing it again changes nothing (item 5).
func TestImportExport(t *testing.T) {
	fastPolls(t)
	_, clientFile := serveDemo(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := exportCmd(context.Background(), []string{"--client", clientFile, "--out", out, "--parallel", "2"}, &stdout, &stderr); err != nil {
		t.Fatalf("export = %v\n%s", err, stderr.String())
	}
	exported := regexp.MustCompile(`Exported (\d+) resources`).FindStringSubmatch(stdout.String())
	if exported == nil {
		t.Fatalf("export summary:\n%s", stdout.String())
	}
	data := t.TempDir()
	code, got, errs := importRun(context.Background(), "--data", data, out)
	if code != 0 {
		t.Fatalf("import of an export directory = %d\n%s\n%s", code, got, errs)
	}
	total, n, replaced, unchanged := importCounts(t, got)
	if total != exported[1] || n != total || replaced != "0" || unchanged != "0" {
		t.Errorf("import of an export of %s resources: %s in all, %s new, %s replaced, %s unchanged; want each once, new\n%s", exported[1], total, n, replaced, unchanged, got)
	}
	if !strings.Contains(got, "Skipped "+filepath.Join(out, "last-export.json")+": not FHIR") {
		t.Errorf("import does not say it skipped last-export.json:\n%s", got)
	}
	code, got, errs = importRun(context.Background(), "--data", data, out)
	if total2, _, _, unchanged := importCounts(t, got); code != 0 || total2 != total || unchanged != total {
		t.Errorf("import of the same export again = %d, want all %s unchanged\n%s\n%s", code, total, got, errs)
	}
}

// TestImportMistakes is issue 16 item 6: a .gz that is not gzip, a
// searchset Bundle and a locked store each say what is wrong.
func TestImportMistakes(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Patient.ndjson.gz"), []byte("<html>404 Not Found</html>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "search.json"), []byte(`{"resourceType":"Bundle","type":"searchset","entry":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, got, errs := importRun(context.Background(), "--data", data, dir)
	for _, want := range []string{"Patient.ndjson.gz: not gzip-compressed, though its name ends in .gz",
		"search.json:1: a searchset Bundle does not import: the entries of transaction, batch and collection Bundles import"} {
		if !strings.Contains(got, want) {
			t.Errorf("import of mistakes lacks %q:\n%s", want, got)
		}
	}
	if code != 1 || strings.Contains(got, "invalid JSON") || !strings.Contains(errs, "2 bad lines or files were skipped") {
		t.Errorf("import of mistakes = %d, want 1 with each mistake named, not \"invalid JSON\"\n%s\n%s", code, got, errs)
	}

	// Another process holds the store (no server socket: an import).
	cfg := config.Default()
	cfg.DataDir = data
	db, err := app.OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	code, _, errs = importRun(context.Background(), "--data", data, dir)
	if code != 1 || !strings.Contains(errs, "in use by another tranche process") || !strings.Contains(errs, "tranche serve") || strings.Contains(errs, "bolt") {
		t.Errorf("import into a locked store = %d %q, want 1 saying another tranche process holds it, no call names", code, errs)
	}
}

// TestImportGroupShrinks is issue 16 item 5: importing generated data over
// a larger demo replaces its Groups, and the import says by how much.
func TestImportGroupShrinks(t *testing.T) {
	big, small, data := t.TempDir(), t.TempDir(), t.TempDir()
	for _, g := range []struct {
		dir string
		n   string
	}{{big, "12"}, {small, "5"}} {
		if code := run(context.Background(), []string{"generate", "--patients", g.n, "--out", g.dir}, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
			t.Fatalf("generate --patients %s = %d", g.n, code)
		}
	}
	if code, got, errs := importRun(context.Background(), "--data", data, big); code != 0 {
		t.Fatalf("import = %d\n%s%s", code, got, errs)
	}
	code, got, errs := importRun(context.Background(), "--data", data, small)
	if code != 0 || !strings.Contains(got, "Warning: Group/group-10 replaced: 10 → 5 members") {
		t.Errorf("import of 5 patients over 12 = %d, want a warning that group-10 went from 10 to 5 members\n%s%s", code, got, errs)
	}
	if !regexp.MustCompile(`(?m)^  Group +0 +3 +0 +0$`).MatchString(got) {
		t.Errorf("import of 5 patients over 12: want its 3 Groups counted replaced\n%s", got)
	}
}

// fakeClock is the import's clock in tests: each reading is step later
// than the last, and then calls hook if set.
type fakeClock struct {
	t    time.Time
	step time.Duration
	hook func()
}

func (c *fakeClock) now() time.Time {
	c.t = c.t.Add(c.step)
	if c.hook != nil {
		c.hook()
	}
	return c.t
}

func setImportClock(t *testing.T, c *fakeClock, every time.Duration) {
	oldNow, oldEvery := importNow, importProgressEvery
	importNow, importProgressEvery = c.now, every
	t.Cleanup(func() { importNow, importProgressEvery = oldNow, oldEvery })
}

// TestImportProgressLines is issue 16 item 4: off a terminal, an import
// prints a plain progress line every importProgressEvery, with bytes
// against the total, the rate and the time left.
func TestImportProgressLines(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	if code := run(context.Background(), []string{"generate", "--patients", "3", "--out", dir}, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatal("generate failed")
	}
	setImportClock(t, &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), step: 11 * time.Second}, 10*time.Second)
	code, got, errs := importRun(context.Background(), "--data", data, dir)
	if code != 0 {
		t.Fatalf("import = %d\n%s%s", code, got, errs)
	}
	line := regexp.MustCompile(`(?m)^importing: [0-9.]+ [kM]?B of [0-9.]+ [kM]?B \(\d+%\), file \d+ of \d+, \d+ resources, [0-9.]+ [kM]?B/s, about \d+[hms0-9]* left$`)
	if !line.MatchString(errs) {
		t.Errorf("import off a terminal printed no progress line with total, rate and time left:\n%s", errs)
	}
	if n := strings.Count(errs, "importing: "); n < 3 {
		t.Errorf("import printed %d progress lines with the clock 11 s on at each report, want one per report (a file, a batch)\n%s", n, errs)
	}
}

// TestImportInterrupted is issue 16 item 4: Ctrl-C during an import ends
// with what was stored and how to go on, not "context canceled"; running
// it again finishes it.
func TestImportInterrupted(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	if code := run(context.Background(), []string{"generate", "--patients", "3", "--out", dir}, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatal("generate failed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reads := 0
	// The second reading is the first progress report: Ctrl-C then.
	setImportClock(t, &fakeClock{step: time.Second, hook: func() {
		if reads++; reads == 2 {
			cancel()
		}
	}}, time.Hour)
	code, got, errs := importRun(ctx, "--data", data, dir)
	if code != 1 || !strings.Contains(got, "Interrupted. The counts above were stored (committed)") ||
		!strings.Contains(got, "Running the same import again is safe") || !strings.Contains(errs, "run the same import again") {
		t.Errorf("interrupted import = %d, want 1 with what was stored and how to go on\n%s\n%s", code, got, errs)
	}
	if strings.Contains(got+errs, "context canceled") {
		t.Errorf("interrupted import says \"context canceled\":\n%s\n%s", got, errs)
	}
	setImportClock(t, &fakeClock{step: time.Second}, time.Hour)
	code, got, errs = importRun(context.Background(), "--data", data, dir)
	if total, n, _, _ := importCounts(t, got); code != 0 || n != total {
		t.Errorf("import again after the interrupt = %d, want every resource new (none was stored)\n%s%s", code, got, errs)
	}
}

// TestImportFHIRVersionFlag: `tranche generate --fhir-version` writes a
// release's shapes, `tranche import` records it in a new store, and
// `--fhir-version` naming another release, or another release's data, is
// refused with both named and nothing written (issue 17).
func TestImportFHIRVersionFlag(t *testing.T) {
	ctx := context.Background()
	cmd := func(ctx context.Context, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(ctx, args, &out, &errb)
		return code, out.String(), errb.String()
	}
	gen := filepath.Join(t.TempDir(), "dstu2")
	if code, _, stderr := cmd(ctx, "generate", "--patients", "2", "--fhir-version", "dstu2", "--out", gen); code != 0 {
		t.Fatalf("generate --fhir-version dstu2: exit %d: %s", code, stderr)
	}
	data := t.TempDir()
	if code, out, stderr := cmd(ctx, "import", "--data", data, "--fhir-version", "r4", gen); code != 1 || !strings.Contains(out+stderr, "DSTU2") || !strings.Contains(out+stderr, "R4") {
		t.Errorf("import --fhir-version r4 of DSTU2 data: exit %d, %s%s; want 1 naming both", code, out, stderr)
	}
	if code, _, stderr := cmd(ctx, "import", "--data", data, gen); code != 0 {
		t.Fatalf("import of DSTU2 data: exit %d: %s", code, stderr)
	}
	code, out, _ := cmd(ctx, "stats", "--data", data)
	if code != 0 || !strings.Contains(out, "DSTU2 (1.0.2)") {
		t.Errorf("stats after a DSTU2 import: exit %d:\n%s", code, out)
	}
	if code, out, stderr := cmd(ctx, "import", "--data", data, "--fhir-version", "stu3", gen); code != 1 || !strings.Contains(out+stderr, "DSTU2") || !strings.Contains(out+stderr, "STU3") {
		t.Errorf("import --fhir-version stu3 into the DSTU2 store: exit %d, %s%s; want 1 naming both", code, out, stderr)
	}
}
