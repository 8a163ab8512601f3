package test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tranchehq/tranche/internal/client"
)

// TestAttachments: every Attachment an export writes has an absolute url
// that the same access token downloads, and nothing else: a DocumentReference
// pointing at a stored Binary gets that Binary's content, inline data above
// the threshold moves to a file of its own, small inline data and absolute
// urls stay, and a Binary naming a patient outside the export is never
// handed out (issue 15 item 9; R84–R86).
func TestAttachments(t *testing.T) {
	dir := generated(t, 12)
	ds := readDataset(t, dir, importTime)
	members := ds.groups["group-10"]
	var outsider string
	for id := range ds.patient {
		if !slices.Contains(members, id) && (outsider == "" || id < outsider) {
			outsider = id
		}
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 5000) // 80,000 bytes: above the default 64 KiB
	b64 := base64.StdEncoding.EncodeToString
	doc := func(id, attachment string) string {
		return `{"resourceType":"DocumentReference","id":"` + id + `","status":"current","subject":{"reference":"Patient/` + members[0] + `"},` +
			`"content":[{"attachment":` + attachment + `}]}`
	}
	lines := []string{
		`{"resourceType":"Binary","id":"doc-bin","contentType":"text/plain","securityContext":{"reference":"Patient/` + members[0] + `"},"data":"` + b64([]byte("hello attachment")) + `"}`,
		`{"resourceType":"Binary","id":"private-bin","contentType":"text/plain","securityContext":{"reference":"Patient/` + outsider + `"},"data":"` + b64([]byte("not yours")) + `"}`,
		doc("doc-binary", `{"url":"Binary/doc-bin","title":"note"}`),
		doc("doc-big", `{"contentType":"application/octet-stream","data":"`+b64(big)+`"}`),
		doc("doc-small", `{"contentType":"text/plain","data":"`+b64([]byte("tiny"))+`"}`),
		doc("doc-private", `{"contentType":"text/plain","url":"Binary/private-bin"}`),
		doc("doc-external", `{"contentType":"application/pdf","url":"https://elsewhere.example/doc.pdf"}`),
	}
	if err := os.WriteFile(filepath.Join(dir, "attachments.ndjson"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	s := startServer(t, cfg)
	wide := s.newClient("system/*.rs", []string{"*"})
	s.tokens = wide

	m := s.wait(s.kickoff("GET", "/Group/group-10/$export?_type=DocumentReference", nil))
	attachments := map[string]map[string]any{} // DocumentReference id → its attachment
	for _, l := range s.download(m.Output, false) {
		var r struct {
			ID      string
			Content []struct{ Attachment map[string]any }
		}
		if err := json.Unmarshal(l.Raw, &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Content) > 0 {
			attachments[r.ID] = r.Content[0].Attachment
		}
	}
	get := func(t *testing.T, u string, auth string) response {
		t.Helper()
		return s.do("GET", u, nil, "Authorization", auth)
	}
	tok, err := wide.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id, contentType string
		content         []byte
	}{
		{"doc-binary", "text/plain", []byte("hello attachment")},
		{"doc-big", "application/octet-stream", big},
	} {
		t.Run(tc.id, func(t *testing.T) {
			s.t = t
			a := attachments[tc.id]
			u, _ := a["url"].(string)
			if !strings.HasPrefix(u, s.URL+"/") || a["data"] != nil {
				t.Fatalf("attachment = %v, want an absolute url on this server and no data (R85)", a)
			}
			if a["contentType"] != tc.contentType || a["size"] != float64(len(tc.content)) {
				t.Errorf("contentType, size = %v, %v; want %s, %d", a["contentType"], a["size"], tc.contentType, len(tc.content))
			}
			if res := get(t, u, "Bearer "+tok); res.Status != http.StatusOK || !bytes.Equal(res.Body, tc.content) {
				t.Errorf("GET %s with the export's token = %d (%d bytes), want 200 and the content (R86)", u, res.Status, len(res.Body))
			}
			if res := get(t, u, "none"); res.Status != http.StatusUnauthorized {
				t.Errorf("GET %s without a token = %d, want 401 (requiresAccessToken)", u, res.Status)
			}
			// A token of the same client that may not read DocumentReference.
			narrow := &client.BackendServices{ClientID: wide.ClientID, Key: wide.Key, TokenURL: wide.TokenURL, FHIRBase: wide.FHIRBase, Scope: "system/Observation.rs"}
			ntok, err := narrow.Token(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res := get(t, u, "Bearer "+ntok); res.Status != http.StatusForbidden {
				t.Errorf("GET %s with a system/Observation.rs token = %d, want 403", u, res.Status)
			}
			// Another client.
			other := s.newClient("system/*.rs", []string{"*"})
			otok, err := other.Token(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res := get(t, u, "Bearer "+otok); res.Status != http.StatusNotFound {
				t.Errorf("GET %s as another client = %d, want 404", u, res.Status)
			}
		})
	}
	t.Run("kept as they were", func(t *testing.T) {
		if a := attachments["doc-small"]; a["data"] != b64([]byte("tiny")) || a["url"] != nil {
			t.Errorf("small inline attachment = %v, want its data kept inline", a)
		}
		if a := attachments["doc-external"]; a["url"] != "https://elsewhere.example/doc.pdf" {
			t.Errorf("external attachment = %v, want its absolute url kept", a)
		}
		if a := attachments["doc-private"]; a["url"] != "Binary/private-bin" {
			t.Errorf("attachment of a Binary naming a patient outside the export = %v, want it left unresolved", a)
		}
	})
	t.Run("no manifest lists them", func(t *testing.T) {
		for _, f := range append(append([]manifestFile{}, m.Output...), m.Error...) {
			if strings.Contains(f.URL, "/attachments/") {
				t.Errorf("manifest lists %s", f.URL)
			}
		}
		n := 0
		for id := range attachments {
			if strings.HasPrefix(id, "doc-") {
				n++
			}
		}
		if n != 5 {
			t.Errorf("%d of the test's DocumentReferences exported, want 5: %v", n, fmt.Sprint(attachments))
		}
	})
}
