// Package handler adapts Tranche's handlers to Lambda's event shapes: the
// net/http API to API Gateway HTTP API events (payload 2.0), the workflow
// steps to Step Functions task invocations, and the importer to S3 object
// events. functions/*/main.go pass these to lambda.Start.
package handler

import (
	"context"
	"net/http"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/tranchehq/tranche/internal/bulk"
)

// HTTPFunc is a Lambda handler for API Gateway HTTP API events.
type HTTPFunc func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// HTTP serves h to API Gateway HTTP API events through
// aws-lambda-go-api-proxy, after two fixes the proxy does not make:
//
//   - A named stage puts "/{stage}" in front of the path
//     (awslabs/aws-lambda-go-api-proxy#130); it is removed, so the routes
//     match on every stage, and kept in the forwarded host so the URLs the
//     API writes (Content-Location, the manifest's) include it. The
//     template deploys the $default stage, which has no prefix.
//   - X-Forwarded-Host and X-Forwarded-Proto are set from the request
//     context, replacing whatever the client sent, so the API can trust
//     them (api.Server.TrustProxy) to build its absolute URLs.
func HTTP(h http.Handler) HTTPFunc {
	adapter := httpadapter.NewV2(h)
	return func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		prefix := ""
		if st := ev.RequestContext.Stage; st != "" && st != "$default" {
			prefix = "/" + st
			ev.RawPath = stripPrefix(ev.RawPath, prefix)
			ev.RequestContext.HTTP.Path = stripPrefix(ev.RequestContext.HTTP.Path, prefix)
		}
		headers := make(map[string]string, len(ev.Headers)+2)
		for k, v := range ev.Headers {
			switch strings.ToLower(k) {
			case "x-forwarded-host", "x-forwarded-proto", "forwarded":
				continue
			}
			headers[k] = v
		}
		if ev.RequestContext.DomainName != "" {
			headers["x-forwarded-host"] = ev.RequestContext.DomainName + prefix
		}
		headers["x-forwarded-proto"] = "https"
		ev.Headers = headers
		return adapter.ProxyWithContext(ctx, ev)
	}
}

func stripPrefix(path, prefix string) string {
	if path == prefix {
		return "/"
	}
	if rest, ok := strings.CutPrefix(path, prefix+"/"); ok {
		return "/" + rest
	}
	return path
}

// Task adapts a workflow step (workflow.Steps.Plan, ...) to a Lambda task
// handler. An error that names itself for the state machine's Retry and
// Catch (an ErrorName() string method, as workflow's step errors have) is
// returned under that name: Lambda would otherwise report the Go type name,
// and "Transient" would never match the definition's Retry.
func Task[I, O any](step func(context.Context, I) (O, error)) func(context.Context, I) (O, error) {
	return func(ctx context.Context, in I) (O, error) {
		out, err := step(ctx, in)
		if err == nil {
			return out, nil
		}
		return out, invokeError(err)
	}
}

// invokeError names err for Step Functions' Retry and Catch by the rule the
// local runner follows too (bulk.StepErrorName): a function that ran out of
// time is Transient, retried like any transient error.
func invokeError(err error) error {
	return messages.InvokeResponse_Error{Type: bulk.StepErrorName(err), Message: err.Error()}
}
