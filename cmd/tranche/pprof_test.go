package main

import (
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
)

// TestServePprof: TRANCHE_PPROF serves the profiles on loopback only.
func TestServePprof(t *testing.T) {
	t.Cleanup(func() {
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
	})
	if stop, err := servePprof("0.0.0.0:0", io.Discard); err == nil {
		stop()
		t.Error("servePprof(0.0.0.0:0) served the profiles on every interface; want an error")
	}
	var out strings.Builder
	stop, err := servePprof("127.0.0.1:0", &out)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	url := strings.TrimSpace(strings.TrimPrefix(out.String(), "tranche: profiles at "))
	for _, p := range []string{"", "block?debug=1", "mutex?debug=1"} {
		resp, err := http.Get(url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s%s: %s", url, p, resp.Status)
		}
	}
}
