package handler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/tranchehq/tranche/internal/aws/handler"
	"github.com/tranchehq/tranche/internal/bulk"
)

const eventsDir = "../../../events"

func loadEvent[T any](t *testing.T, name string) T {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(eventsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var ev T
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ev
}

// echo answers with what the handler was asked.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{
		"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery,
		"host": r.Header.Get("X-Forwarded-Host"), "proto": r.Header.Get("X-Forwarded-Proto"),
		"auth": r.Header.Get("Authorization"), "body": string(body),
	})
})

func call(t *testing.T, fn func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error), ev events.APIGatewayV2HTTPRequest) map[string]string {
	t.Helper()
	res, err := fn(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(res.Body), &got); err != nil {
		t.Fatalf("response %d %q: %v", res.StatusCode, res.Body, err)
	}
	return got
}

// TestHTTPEvents feeds every HTTP fixture of events/ through handler.HTTP:
// the handler sees the route's path (without a named stage's prefix), the
// query, the body and an https base on the API's domain.
func TestHTTPEvents(t *testing.T) {
	const domain = "abc123xyz.execute-api.us-east-1.amazonaws.com"
	for _, tc := range []struct {
		file, method, path, host string
	}{
		{"metadata.json", "GET", "/metadata", domain},
		{"well-known.json", "GET", "/.well-known/smart-configuration", domain},
		{"kickoff.json", "GET", "/$export", domain},
		{"kickoff-group.json", "POST", "/Group/g1/$export", domain},
		{"kickoff-named-stage.json", "GET", "/Patient/$export", domain + "/prod"},
		{"status.json", "GET", "/jobs/0123456789abcdef0123456789abcdef", domain},
		{"cancel.json", "DELETE", "/jobs/0123456789abcdef0123456789abcdef", domain},
		{"download.json", "GET", "/files/0123456789abcdef0123456789abcdef/Patient.00000.000.000.ndjson", domain},
		{"token.json", "POST", "/token", domain},
		{"register.json", "POST", "/register", domain},
	} {
		t.Run(tc.file, func(t *testing.T) {
			ev := loadEvent[events.APIGatewayV2HTTPRequest](t, tc.file)
			got := call(t, handler.HTTP(echo), ev)
			if got["method"] != tc.method || got["path"] != tc.path || got["host"] != tc.host || got["proto"] != "https" {
				t.Errorf("handler saw %s %s on %s://%s, want %s %s on https://%s", got["method"], got["path"], got["proto"], got["host"], tc.method, tc.path, tc.host)
			}
			if got["query"] != ev.RawQueryString || got["body"] != ev.Body || got["auth"] != ev.Headers["authorization"] {
				t.Errorf("handler saw query %q body %q auth %q, want the event's", got["query"], got["body"], got["auth"])
			}
		})
	}
}

// TestNamedStage is why handler.HTTP exists: the proxy alone hands a named
// stage's prefix to the routes (aws-lambda-go-api-proxy#130).
func TestNamedStage(t *testing.T) {
	ev := loadEvent[events.APIGatewayV2HTTPRequest](t, "kickoff-named-stage.json")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /Patient/$export", echo)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, `{"path":"404"}`, 404) })
	if res, _ := httpadapter.NewV2(mux).ProxyWithContext(context.Background(), ev); res.StatusCode != 404 {
		t.Errorf("the bare proxy answered %d: the named-stage problem is gone, revisit handler.HTTP", res.StatusCode)
	}
	if got := call(t, handler.HTTP(mux), ev); got["path"] != "/Patient/$export" {
		t.Errorf("handler.HTTP routed to %q, want /Patient/$export", got["path"])
	}
}

// TestForwardedHeaders checks that a client cannot choose the base URL the
// API writes into Content-Location and manifests.
func TestForwardedHeaders(t *testing.T) {
	ev := loadEvent[events.APIGatewayV2HTTPRequest](t, "status.json")
	ev.Headers["X-Forwarded-Host"] = "evil.example"
	ev.Headers["x-forwarded-proto"] = "http"
	got := call(t, handler.HTTP(echo), ev)
	if got["host"] != ev.RequestContext.DomainName || got["proto"] != "https" {
		t.Errorf("forwarded %s://%s, want https://%s", got["proto"], got["host"], ev.RequestContext.DomainName)
	}
}

type namedErr struct{ name string }

func (e *namedErr) Error() string     { return "boom" }
func (e *namedErr) ErrorName() string { return e.name }

type jobInput struct {
	JobID string `json:"jobId"`
	Item  int    `json:"item"`
}

// TestTask checks the names Step Functions' Retry and Catch see.
func TestTask(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("wrapped: %w", &namedErr{"Transient"}), "Transient"},
		{&namedErr{"States.TaskFailed"}, "States.TaskFailed"},
		{bulk.Errorf(bulk.EINTERNAL, "x"), "Error"},
		{context.DeadlineExceeded, "Transient"},
	} {
		fn := handler.Task(func(ctx context.Context, in jobInput) (jobInput, error) { return in, tc.err })
		_, err := fn(context.Background(), jobInput{JobID: "j"})
		var ie messages.InvokeResponse_Error
		if !errors.As(err, &ie) || ie.Type != tc.want {
			t.Errorf("Task error for %v = %#v, want errorType %q", tc.err, err, tc.want)
		}
	}
	fn := handler.Task(func(ctx context.Context, in jobInput) (jobInput, error) { return in, nil })
	for _, file := range []string{"plan.json", "exportitem.json", "finalize.json"} {
		in := loadEvent[jobInput](t, file)
		if out, err := fn(context.Background(), in); err != nil || out.JobID == "" {
			t.Errorf("Task(%s) = %+v, %v", file, out, err)
		}
	}
}
