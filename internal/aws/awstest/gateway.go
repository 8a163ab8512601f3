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

// Route is an HTTP API route: a key such as "GET /jobs/{id}", "GET
// /files/{proxy+}" or "$default", and the integration it invokes.
type Route struct {
	Key string
	Fn  func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)
}

// Router picks each event's route as API Gateway's HTTP API does: the most
// specific match wins (literal segments over {variables}, a {greedy+}
// variable last, $default when nothing matches). It sets the event's
// RouteKey and PathParameters and invokes the route's function; without a
// match it answers 404 {"message":"Not Found"} as API Gateway does.
func Router(routes []Route) func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	return func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		path := ev.RawPath
		if st := ev.RequestContext.Stage; st != "" && st != "$default" {
			path = strings.TrimPrefix(path, "/"+st)
		}
		var best *Route
		var bestParams map[string]string
		bestScore := -1
		for i, r := range routes {
			if r.Key == "$default" {
				if best == nil {
					best, bestScore = &routes[i], -1
				}
				continue
			}
			method, pattern, _ := strings.Cut(r.Key, " ")
			if method != ev.RequestContext.HTTP.Method && method != "ANY" {
				continue
			}
			params, score, ok := matchRoute(pattern, path)
			if ok && score > bestScore {
				best, bestParams, bestScore = &routes[i], params, score
			}
		}
		if best == nil {
			return events.APIGatewayV2HTTPResponse{StatusCode: 404, Body: `{"message":"Not Found"}`, Headers: map[string]string{"Content-Type": "application/json"}}, nil
		}
		ev.RouteKey, ev.PathParameters = best.Key, bestParams
		return best.Fn(ctx, ev)
	}
}

// matchRoute matches an escaped path against a route's path; the score
// ranks literal segments above variables and a greedy variable lowest.
func matchRoute(pattern, path string) (map[string]string, int, bool) {
	ps := strings.Split(strings.Trim(pattern, "/"), "/")
	xs := strings.Split(strings.Trim(path, "/"), "/")
	params := map[string]string{}
	score := 0
	for i, p := range ps {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "+}") {
			if i >= len(xs) || xs[i] == "" {
				return nil, 0, false
			}
			params[strings.TrimSuffix(p[1:], "+}")] = strings.Join(xs[i:], "/")
			return params, score, true
		}
		if i >= len(xs) {
			return nil, 0, false
		}
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if xs[i] == "" {
				return nil, 0, false
			}
			params[p[1:len(p)-1]] = xs[i]
			score += 1
			continue
		}
		if p != xs[i] {
			return nil, 0, false
		}
		score += 100
	}
	if len(xs) != len(ps) {
		return nil, 0, false
	}
	return params, score + 1000, true
}
