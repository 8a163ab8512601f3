package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeDemo runs `tranche serve` as a newcomer does: an empty data dir
// gets demo data and a demo client, `tranche token` and `tranche export`
// work with the client file it wrote, and a signal (context cancel) shuts it
// down cleanly.
func TestServeDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	data := t.TempDir()
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--demo-patients", "15", "--log-level", "warn"}, pw, &stderr)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var base string
	for sc.Scan() {
		if _, url, ok := strings.Cut(sc.Text(), "serving FHIR Bulk Data at "); ok {
			base = url
			break
		}
	}
	if base == "" {
		t.Fatalf("serve printed no base URL; stderr: %s", stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	clientFile := filepath.Join(data, DemoClientFile)
	var tok bytes.Buffer
	if code := run(ctx, []string{"token", "--client", clientFile}, &tok, &stderr); code != 0 {
		t.Fatalf("tranche token = %d: %s", code, stderr.String())
	}
	req, _ := http.NewRequest("GET", base+"/Patient/$export", nil)
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Prefer", "respond-async")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("kick-off without a token = %v %v, want 401", res, err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok.String()))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("kick-off = %d, want 202", res.StatusCode)
	}
	status := res.Header.Get("Content-Location")
	var m struct{ Output []struct{ Type string } }
	for deadline := time.Now().Add(time.Minute); ; {
		req, _ := http.NewRequest("GET", status, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok.String()))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			break
		}
		if res.StatusCode != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("status = %d %s", res.StatusCode, b)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	if len(m.Output) < 10 {
		t.Errorf("demo Patient export has %d files, want one per compartment type (10+)", len(m.Output))
	}
	// The README quickstart: one export command with the demo client file.
	var out bytes.Buffer
	if code := run(ctx, []string{"export", "--client", clientFile, "--out", t.TempDir(), "--level", "group:group-10"}, &out, &stderr); code != 0 {
		t.Errorf("tranche export --client demo-client.json = %d\n%s\n%s", code, out.String(), stderr.String())
	}
	// The README's cohort example: the demo client may ask for Group
	// writes, create a cohort, and export it with the same command.
	var cohortTok bytes.Buffer
	if code := run(ctx, []string{"token", "--client", clientFile, "--scope", "system/*.rs system/Group.cud"}, &cohortTok, &stderr); code != 0 {
		t.Fatalf("tranche token --scope with Group.cud = %d: %s", code, stderr.String())
	}
	body := `{"resourceType":"Group","type":"person","actual":false,"name":"women","modifierExtension":[{"url":"http://hl7.org/fhir/uv/bulkdata/StructureDefinition/member-filter","valueExpression":{"language":"application/x-fhir-query","expression":"Patient?gender=female"}}]}`
	req, _ = http.NewRequest("POST", base+"/Group", strings.NewReader(body))
	for k, v := range map[string]string{"Authorization": "Bearer " + strings.TrimSpace(cohortTok.String()), "Prefer": "respond-async",
		"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"} {
		req.Header.Set(k, v)
	}
	if res, err = http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /Group = %v %v, want 202", res, err)
	}
	res.Body.Close()
	id := strings.TrimPrefix(res.Header.Get("Content-Location"), base+"/cohorts/")
	for deadline := time.Now().Add(time.Minute); ; {
		req, _ := http.NewRequest("GET", base+"/cohorts/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(cohortTok.String()))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			break
		}
		if res.StatusCode != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("cohort status = %d", res.StatusCode)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	out.Reset()
	if code := run(ctx, []string{"export", "--client", clientFile, "--out", t.TempDir(), "--level", "group:" + id}, &out, &stderr); code != 0 {
		t.Errorf("tranche export --level group:<cohort> = %d\n%s\n%s", code, out.String(), stderr.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exit = %d, want 0; stderr: %s", code, stderr.String())
	}
}

func TestCommandLineErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 2},
		{[]string{"nope"}, 2},
		{[]string{"serve", "--addr", "nonsense"}, 1},
		{[]string{"serve", "--bogus"}, 2},
		{[]string{"import", "--data", dir}, 2},
		{[]string{"import", "--data", dir, filepath.Join(dir, "missing.ndjson")}, 1},
		{[]string{"generate"}, 2},
		{[]string{"generate", "--out", dir, "--base", "yesterday"}, 2},
		{[]string{"version"}, 0},
	} {
		var out, errb bytes.Buffer
		if got := run(context.Background(), tc.args, &out, &errb); got != tc.want {
			t.Errorf("run(%q) = %d, want %d\nstdout: %s\nstderr: %s", tc.args, got, tc.want, out.String(), errb.String())
		}
	}
}

func TestGenerateImport(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"generate", "--patients", "5", "--out", dir}, &out, &errb); code != 0 {
		t.Fatalf("generate = %d: %s", code, errb.String())
	}
	bad := filepath.Join(dir, "Bad.ndjson")
	if err := os.WriteFile(bad, []byte("{\"resourceType\":\"Patient\",\"id\":\"ok-1\"}\nnot json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	code := run(context.Background(), []string{"import", "--data", data, dir}, &out, &errb)
	if code != 1 || !strings.Contains(out.String(), "Bad.ndjson:2:") {
		t.Errorf("import with a bad line = %d, want 1 and the bad line reported as file:2\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "Imported ") {
		t.Errorf("import summary missing:\n%s", out.String())
	}
}

// TestServeTLS: --tls-cert/--tls-key serve HTTPS with TLS 1.2 at least
// (R1), and without TLS a non-loopback address is refused while
// authorization is on.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	// TLS needs --base-url: the token endpoint and issuer are configured,
	// never taken from a request's Host (issue 14 item 3).
	var noBase bytes.Buffer
	if code := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data0"), "--demo=false",
		"--tls-cert", certFile, "--tls-key", keyFile}, io.Discard, &noBase); code != 1 || !strings.Contains(noBase.String(), "--base-url") {
		t.Errorf("serve with TLS and no --base-url = %d %q, want 1 naming --base-url", code, noBase.String())
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	go func() {
		done <- run(ctx, []string{"serve", "--addr", addr, "--base-url", "https://" + addr, "--data", filepath.Join(dir, "data"), "--demo=false",
			"--tls-cert", certFile, "--tls-key", keyFile, "--log-level", "warn"}, pw, &stderr)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var base string
	for sc.Scan() {
		if _, url, ok := strings.Cut(sc.Text(), "serving FHIR Bulk Data at "); ok {
			base = url
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	host, ok := strings.CutPrefix(base, "https://")
	if !ok {
		t.Fatalf("base URL %q is not https; stderr: %s", base, stderr.String())
	}
	if c, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded, want it refused (R1)")
	}
	c, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2 handshake: %v", err)
	}
	c.Close()
	// --demo=false registers no full-access demo client (issue 14 item 4).
	if _, err := os.Stat(filepath.Join(dir, "data", DemoClientFile)); !os.IsNotExist(err) {
		t.Errorf("serve --demo=false wrote %s (%v): want no demo client", DemoClientFile, err)
	}
	cancel()
	<-done

	var out bytes.Buffer
	stderr.Reset()
	for _, extra := range [][]string{nil, {"--open"}} {
		// --open is no exemption: plain HTTP beyond loopback needs
		// --insecure-listen (README: "without TLS the server only listens
		// on loopback").
		stderr.Reset()
		args := append([]string{"serve", "--addr", "0.0.0.0:0", "--data", filepath.Join(dir, "data2")}, extra...)
		if code := run(context.Background(), args, &out, &stderr); code != 1 ||
			!strings.Contains(stderr.String(), "loopback") || !strings.Contains(stderr.String(), "--insecure-listen") {
			t.Errorf("serve on 0.0.0.0 without TLS %v = %d %q, want 1 and an explanation", extra, code, stderr.String())
		}
	}
}

func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// TestClientsCommand: operators add a client with its contract, list it,
// and remove it (issue 3: tranche clients add|list|remove).
func TestClientsCommand(t *testing.T) {
	data, dir := t.TempDir(), t.TempDir()
	clientFile := filepath.Join(dir, "payer.json")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"clients", "add", "--data", data, "--name", "payer", "--generate-key", clientFile,
		"--scope", "system/Observation.rs system/Patient.rs", "--groups", "group-10", "--types", "Patient,Observation", "--max-since-days", "30", "--max-exports", "2", "--max-polls", "30"}, &out, &errb)
	if code != 0 {
		t.Fatalf("clients add = %d: %s", code, errb.String())
	}
	cf, err := os.ReadFile(clientFile)
	if err != nil || !bytes.Contains(cf, []byte(`"d"`)) {
		t.Fatalf("client file %s has no private key: %v", clientFile, err)
	}
	var c struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal(cf, &c); err != nil || c.ClientID == "" {
		t.Fatalf("client file: %v %s", err, cf)
	}
	out.Reset()
	if code := run(context.Background(), []string{"clients", "list", "--data", data}, &out, &errb); code != 0 {
		t.Fatalf("clients list = %d", code)
	}
	for _, want := range []string{c.ClientID, "payer", "system/Observation.rs system/Patient.rs", "group-10", "Patient,Observation", "30d", "2", "30"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("clients list lacks %q:\n%s", want, out.String())
		}
	}
	if code := run(context.Background(), []string{"clients", "add", "--data", data, "--name", "bad", "--jwks-uri", "http://10.0.0.1/jwks"}, &out, &errb); code != 1 {
		t.Errorf("clients add with a private jwks_uri = %d, want 1", code)
	}
	// The contract's types must be resource types (issue 13).
	if code := run(context.Background(), []string{"clients", "add", "--data", data, "--name", "typo", "--generate-key", filepath.Join(dir, "typo.json"),
		"--types", "Patient,Observaton"}, &out, &errb); code != 1 {
		t.Errorf("clients add --types with an unknown type = %d, want 1", code)
	}
	if code := run(context.Background(), []string{"clients", "remove", "--data", data, c.ClientID}, &out, &errb); code != 0 {
		t.Fatalf("clients remove = %d: %s", code, errb.String())
	}
	out.Reset()
	_ = run(context.Background(), []string{"clients", "list", "--data", data}, &out, &errb)
	if strings.Contains(out.String(), c.ClientID) {
		t.Errorf("removed client still listed:\n%s", out.String())
	}
	if code := run(context.Background(), []string{"clients", "remove", "--data", data, "nobody"}, &out, &errb); code != 1 {
		t.Errorf("clients remove of an unknown id = %d, want 1", code)
	}
}
