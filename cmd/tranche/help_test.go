package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

// usageCommands returns every command line the top-level usage lists:
// "serve", "import", ..., and for "clients add|list|remove" also "clients
// add", "clients list" and "clients remove".
func usageCommands(t *testing.T) [][]string {
	t.Helper()
	var cmds [][]string
	for _, m := range regexp.MustCompile(`(?m)^  tranche (\S+)(?:\s+(\S+))?`).FindAllStringSubmatch(usage, -1) {
		cmds = append(cmds, []string{m[1]})
		if strings.Contains(m[2], "|") && !strings.HasPrefix(m[2], "-") && !strings.HasPrefix(m[2], "[") {
			for _, sub := range strings.Split(m[2], "|") {
				cmds = append(cmds, []string{m[1], sub})
			}
		}
	}
	if len(cmds) < 10 {
		t.Fatalf("found only %d commands in the usage text:\n%s", len(cmds), usage)
	}
	return cmds
}

// TestHelpExitsZero: -h, -help and --help print help and exit 0 for every
// command the usage lists, whatever else is on the line, and start
// nothing (serve does not serve, export sends nothing).
func TestHelpExitsZero(t *testing.T) {
	for _, cmd := range usageCommands(t) {
		for _, h := range []string{"-h", "-help", "--help"} {
			args := append(append([]string{}, cmd...), h)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				code := run(context.Background(), args, &stdout, &stderr)
				if code != 0 {
					t.Errorf("tranche %s = exit %d, want 0\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
				}
				all := stdout.String() + stderr.String()
				if strings.TrimSpace(all) == "" {
					t.Errorf("tranche %s printed nothing", strings.Join(args, " "))
				}
				for _, bad := range []string{"flag provided but not defined", "unknown command", "unknown flag"} {
					if strings.Contains(all, bad) {
						t.Errorf("tranche %s printed %q:\n%s", strings.Join(args, " "), bad, all)
					}
				}
			})
		}
	}
	// -h wins over the rest of the line: nothing is parsed after it, so
	// nothing runs.
	for _, args := range [][]string{
		{"export", "--fhir", "http://127.0.0.1:1", "-h"},
		{"serve", "--addr", "127.0.0.1:0", "-h"},
		{"register", "--fhir", "http://127.0.0.1:1", "--initial-token", "t", "--generate-key", t.TempDir() + "/k.jwk", "-h"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Errorf("tranche %s = exit %d, want 0\n%s", strings.Join(args, " "), code, stderr.String())
		}
	}
}

// TestUsageErrorsNameTheFlag: a mistake on the command line says which
// flag is wrong and what it accepts, with the command's one-line synopsis
// rather than every flag's help, and exits 2.
func TestUsageErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"export", "--no-such-flag"}, []string{"tranche export: unknown flag --no-such-flag\n", "Usage: tranche export --fhir URL", "Run 'tranche export -h' for every flag."}},
		{[]string{"export", "--since_last"}, []string{"unknown flag --since_last (did you mean --since-last?)"}},
		{[]string{"export", "--tpye", "Patient"}, []string{"unknown flag --tpye (did you mean --type?)"}},
		{[]string{"export", "--parallel", "many"}, []string{`--parallel "many": want a whole number (files downloaded at a time)`}},
		{[]string{"export", "--parallel", "99999999999999999999"}, []string{`--parallel "99999999999999999999": value out of range: want a whole number`}},
		{[]string{"export", "--keep=maybe"}, []string{`--keep "maybe": want true or false`}},
		{[]string{"export", "--fhir"}, []string{"--fhir needs a value: FHIR base URL"}},
		{[]string{"export", "--fhir", "http://x", "--level", "everything"}, []string{`--level "everything": want system, patient or group:ID`}},
		{[]string{"export", "--fhir", "http://x", "Patient"}, []string{`unexpected argument "Patient"`}},
		{[]string{"register", "--fhir"}, []string{"tranche register: --fhir needs a value", "Usage: tranche register --fhir URL --initial-token T"}},
		{[]string{"register", "--jwks"}, []string{"unknown flag --jwks (did you mean --jwks-uri?)"}},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		if code != 2 {
			t.Errorf("tranche %q = exit %d, want 2", tc.args, code)
		}
		for _, want := range tc.want {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("tranche %q: stderr lacks %q:\n%s", tc.args, want, stderr.String())
			}
		}
		// The short usage, not the whole help.
		if strings.Contains(stderr.String(), "-cancel-on-interrupt") || strings.Contains(stderr.String(), "-generate-key string") {
			t.Errorf("tranche %q printed every flag's help on a mistake:\n%s", tc.args, stderr.String())
		}
		if stdout.Len() > 0 {
			t.Errorf("tranche %q wrote to stdout on a usage error:\n%s", tc.args, stdout.String())
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"type", "type", 0}, {"tpye", "type", 1}, {"since_last", "since-last", 1},
		{"paralel", "parallel", 1}, {"nope", "scope", 2}, {"", "abc", 3},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestBenchMoved: the benchmark is bin/tranche-bench (issue 19 step 5);
// the usage does not list it, and `tranche bench` says where it went.
func TestBenchMoved(t *testing.T) {
	if strings.Contains(usage, "bench") {
		t.Errorf("the usage lists bench:\n%s", usage)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"bench", "--short"}, &stdout, &stderr); code != 2 {
		t.Errorf("tranche bench = exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "bin/tranche-bench") {
		t.Errorf("tranche bench: stderr lacks bin/tranche-bench:\n%s", stderr.String())
	}
}
