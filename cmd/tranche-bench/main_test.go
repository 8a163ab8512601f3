package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
)

func TestParseOptions(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		o, err := parseOptions([]string{"--resources", "100k, 1M,3000000", "--pollers", "10"}, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if want := []int64{100_000, 1_000_000, 3_000_000}; !slices.Equal(o.sizes, want) {
			t.Errorf("sizes = %v, want %v", o.sizes, want)
		}
	})
	t.Run("Short", func(t *testing.T) {
		o, err := parseOptions([]string{"--short", "--resources", "1M"}, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(o.sizes, []int64{10_000}) || o.latencyFor.Seconds() != 1 {
			t.Errorf("--short: sizes %v, latency phases %s; want [10000], 1s", o.sizes, o.latencyFor)
		}
	})
	for _, args := range [][]string{{"--resources", "500"}, {"--resources", "1x"}, {"--no-such-flag"}, {"extra"}, {"--pollers", "0"}} {
		t.Run("ErrUsage "+strings.Join(args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(context.Background(), append([]string{"tranche-bench"}, args...), &bytes.Buffer{}, &stderr); code != 2 {
				t.Errorf("exit %d, want 2\n%s", code, stderr.String())
			}
		})
	}
	t.Run("Help", func(t *testing.T) {
		var stderr bytes.Buffer
		if code := run(context.Background(), []string{"tranche-bench", "-h"}, &bytes.Buffer{}, &stderr); code != 0 {
			t.Errorf("-h: exit %d, want 0", code)
		}
		if !strings.Contains(stderr.String(), "-markdown") {
			t.Errorf("-h does not list --markdown:\n%s", stderr.String())
		}
	})
}

// TestImportFloor: the floor counts what the importer would import from
// NDJSON (plain and gzipped) and Bundles, and skips what it would reject.
func TestImportFloor(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.ndjson", `{"resourceType":"Patient","id":"p1"}`+"\n\n"+
		`{"resourceType":"Patient"}`+"\n"+ // no id
		`not json`+"\n"+
		`[1]`+"\n"+
		`{"resourceType":"Observation","id":"o1","valueQuantity":{"value":1}}`) // no final newline
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(`{"resourceType":"Condition","id":"c1"}` + "\n" + `{"resourceType":"Condition","id":"c2"}` + "\n"))
	_ = zw.Close()
	write("b.ndjson.gz", gz.String())
	write("bundle.json", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","id":"p2"}},{"resource":{"resourceType":"Patient"}}]}`)
	write("manifest.json", `{"output":[]}`)
	write("notes.txt", `{"resourceType":"Patient","id":"p3"}`)

	f, err := importFloor(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.Files != 3 || f.Resources != 5 {
		t.Errorf("importFloor = %d files, %d resources; want 3, 5", f.Files, f.Resources)
	}
	if f.Bytes == 0 || f.Seconds <= 0 || f.ResourcesPerSec() <= 0 {
		t.Errorf("importFloor = %+v: want bytes and a rate", f)
	}
}

func TestReplaceBetween(t *testing.T) {
	doc := []byte("# Benchmarks\n\n## Latest run\n\n" + beginMarker + "\nold\n" + endMarker + "\n\n## History\n\nkept\n")
	out, err := replaceBetween(doc, "new table\n")
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, want := range []string{"# Benchmarks\n\n## Latest run\n\n" + beginMarker + "\n", "new table\n" + endMarker + "\n\n## History\n\nkept\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("replaceBetween lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "old") {
		t.Errorf("replaceBetween kept the old section:\n%s", got)
	}
	// Again: the same markers, the same result.
	again, err := replaceBetween(out, "new table\n")
	if err != nil || string(again) != got {
		t.Errorf("replaceBetween is not idempotent:\n%s", again)
	}
	for _, bad := range []string{"no markers", endMarker + beginMarker, beginMarker + beginMarker + endMarker} {
		if _, err := replaceBetween([]byte(bad), "x"); err == nil {
			t.Errorf("replaceBetween(%q) = nil error", bad)
		}
	}
}

func testReport() *report {
	res := func(name string, gen int64, perSec, rssMB, floorPerSec, p99, manifest float64) benchResult {
		r := benchResult{Dataset: name, Generated: gen, Pollers: 200, ImportPerSec: perSec, ImportPeakRSSMB: rssMB,
			Floor: floorRun{Seconds: 1, Resources: int64(floorPerSec)}, ImportPctOfFloor: 100 * perSec / floorPerSec}
		r.Loaded.StatusP99MS, r.Loaded.KickP99MS = p99, p99/2
		r.Exports = []exportRun{{Level: "system", ManifestSeconds: manifest, MBPerSecManifest: 200, CopyMBPerSec: 400}}
		return r
	}
	return &report{Pollers: 200, LatencyFor: "5s", Results: []benchResult{
		res("synthea-100", 0, 50_000, 200, 400_000, 10, 0.08),
		res("generated-10000", 10_000, 40_000, 100, 300_000, 30, 0.05),
		res("generated-100000", 100_000, 120_000, 280, 400_000, 15, 0.2),
		res("generated-1000000", 1_000_000, 110_000, 305, 420_000, 25, 2.6),
	}}
}

func TestChecks(t *testing.T) {
	rep := testReport()
	met := map[string]string{}
	for _, c := range rep.checks() {
		met[c.What+" "+c.Dataset] = c.Met
	}
	for key, want := range map[string]string{
		"import rate generated-100000":                                   "yes",
		"import rate generated-10000":                                    "no",
		"import / its floor generated-100000":                            "yes", // 30 %
		"import / its floor synthea-100":                                 "no",  // 12.5 %
		"import peak RSS generated-1000000":                              "no",
		"import peak RSS, largest / smallest size 1M / 100k":             "yes", // 305/280 = 1.09
		"status p99, 200 pollers, export running generated-1000000":      "no",
		"kick-off p99, export running generated-1000000":                 "yes",
		"system export, kick-off → manifest synthea-100":                 "yes",
		"system export, kick-off → manifest generated-1000000":           "no",
		"system export, kick-off → manifest generated-100000":            none,
		"system export MB/s to manifest vs copy floor generated-1000000": none,
	} {
		if got, ok := met[key]; !ok || got != want {
			t.Errorf("check %q: met %q (present %v), want %q", key, got, ok, want)
		}
	}

	// Below 100k the ratio is shown, but it is not the target's range.
	rep.Results = rep.Results[:3]
	if _, dataset, _, _, m := rep.flatness(); dataset != "100k / 10k" || m != none {
		t.Errorf("flatness of 10k and 100k = %q, met %q; want 100k / 10k, —", dataset, m)
	}
}

func TestMarkdown(t *testing.T) {
	rep := testReport()
	rep.Command = "bin/tranche-bench --resources 100k"
	rep.Summary = rep.checks()
	md := rep.markdown()
	if !strings.HasPrefix(md, "`bin/tranche-bench --resources 100k`, ") {
		t.Errorf("markdown does not start with the command:\n%s", md)
	}
	summary, imports := strings.Index(md, "Summary (issue 20 targets):"), strings.Index(md, "Import, and its floor")
	if summary < 0 || imports < 0 || summary > imports {
		t.Errorf("markdown: want the summary first, then the import table:\n%s", md)
	}
	if !strings.Contains(md, "| what | dataset | measured | target | met |\n|---|---|---|---|---|\n") {
		t.Errorf("markdown: no summary table header:\n%s", md)
	}
	var text bytes.Buffer
	rep.printText(&text)
	if i := strings.LastIndex(text.String(), "summary (issue 20 targets):"); i < 0 || !strings.Contains(text.String()[i:], "machine: ") {
		t.Errorf("text: want the summary, then the machine, at the end:\n%s", text.String())
	}
}

func TestThousands(t *testing.T) {
	for x, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 123456.6: "123,457", 3_000_000: "3,000,000", -1234: "-1,234"} {
		if got := thousands(x); got != want {
			t.Errorf("thousands(%v) = %q, want %q", x, got, want)
		}
	}
	for n, want := range map[int64]string{100_000: "100k", 1_000_000: "1M", 3_000_000: "3M", 2_500_000: "2.5M", 12345: "12345"} {
		if got := shortSize(n); got != want {
			t.Errorf("shortSize(%d) = %q, want %q", n, got, want)
		}
	}
}
