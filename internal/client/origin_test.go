package client

import "testing"

// TestMayReceiveToken: the access token goes to the FHIR server's origin
// only, unless TokenOrigins names another (README: "the token never sent to
// another host").
func TestMayReceiveToken(t *testing.T) {
	c := &Client{Base: "https://fhir.example.org/r4", TokenOrigins: []string{"https://files.example.org"}}
	for u, want := range map[string]bool{
		"https://fhir.example.org/r4/files/j/a.ndjson":     true,
		"https://FHIR.example.org:443/files/j/a.ndjson":    true,
		"https://files.example.org/j/a.ndjson":             true,
		"http://fhir.example.org/files/j/a.ndjson":         false, // another scheme
		"https://fhir.example.org:8443/files/j/a.ndjson":   false, // another port
		"https://evil.example/files/j/a.ndjson":            false,
		"https://fhir.example.org.evil.example/a.ndjson":   false,
		"/files/j/a.ndjson":                                false, // not absolute
		"https://user@fhir.example.org/files/j/a.ndjson":   true,
		"https://fhir.example.org%2Fevil.example/a.ndjson": false,
	} {
		if got := c.mayReceiveToken(u); got != want {
			t.Errorf("mayReceiveToken(%s) = %v, want %v", u, got, want)
		}
	}
	local := &Client{Base: "http://localhost:8080"}
	if !local.mayReceiveToken("http://127.0.0.1:8080/files/j/a.ndjson") || local.mayReceiveToken("http://127.0.0.1:9090/files/x") {
		t.Error("loopback: localhost and 127.0.0.1 on the same port are one server, another port is not")
	}
}
