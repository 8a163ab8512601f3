package awstest

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// MaxResponseBytes is Lambda's limit on a synchronous response.
const MaxResponseBytes = 6 << 20

// Gateway is a small API Gateway HTTP API: it turns each request into a
// payload-2.0 event for stage ("$default", or a named stage whose name then
// prefixes every path, as API Gateway sends it) and writes the function's
// response back, refusing responses over Lambda's 6 MB as API Gateway does.
func Gateway(fn func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error), stage string) http.Handler {
	var seq atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ev := Event(r, body, stage)
		ev.RequestContext.RequestID = fmt.Sprintf("req-%d", seq.Add(1))
		res, err := fn(r.Context(), ev)
		if err != nil {
			http.Error(w, `{"message":"Internal Server Error"}`, http.StatusInternalServerError)
			return
		}
		out := []byte(res.Body)
		if res.IsBase64Encoded {
			if out, err = base64.StdEncoding.DecodeString(res.Body); err != nil {
				http.Error(w, `{"message":"Internal Server Error"}`, http.StatusInternalServerError)
				return
			}
		}
		if len(res.Body) > MaxResponseBytes {
			http.Error(w, `{"message":"Internal Server Error"}`, http.StatusBadGateway)
			return
		}
		for k, v := range res.Headers {
			w.Header().Set(k, v)
		}
		for k, vs := range res.MultiValueHeaders {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		for _, c := range res.Cookies {
			w.Header().Add("Set-Cookie", c)
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(out)))
		w.WriteHeader(res.StatusCode)
		_, _ = w.Write(out)
	})
}

// Event is the HTTP API payload-2.0 event API Gateway sends for r.
func Event(r *http.Request, body []byte, stage string) events.APIGatewayV2HTTPRequest {
	path := r.URL.EscapedPath()
	if stage != "" && stage != "$default" {
		path = "/" + stage + path
	}
	headers := map[string]string{}
	var cookies []string
	for k, vs := range r.Header {
		if strings.EqualFold(k, "Cookie") {
			cookies = append(cookies, vs...)
			continue
		}
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	headers["host"] = r.Host
	now := time.Now()
	ev := events.APIGatewayV2HTTPRequest{
		Version:        "2.0",
		RouteKey:       "$default",
		RawPath:        path,
		RawQueryString: r.URL.RawQuery,
		Cookies:        cookies,
		Headers:        headers,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			AccountID:  "123456789012",
			APIID:      "local",
			DomainName: r.Host,
			Stage:      stage,
			Time:       now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:  now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.Method, Path: path, Protocol: r.Proto, SourceIP: strings.Split(r.RemoteAddr, ":")[0], UserAgent: r.UserAgent(),
			},
		},
	}
	if len(body) > 0 {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	}
	return ev
}
