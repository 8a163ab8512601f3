package secrets_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/aws/secrets"
	"github.com/tranchehq/tranche/internal/bulk"
)

func TestGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var in map[string]string
		json.Unmarshal(raw, &in)
		auth := r.Header.Get("Authorization")
		if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" ||
			!strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=test/") || !strings.Contains(auth, "/us-east-1/secretsmanager/aws4_request") {
			w.WriteHeader(400)
			io.WriteString(w, `{"__type":"InvalidRequestException","message":"bad request"}`)
			return
		}
		switch in["SecretId"] {
		case "key":
			io.WriteString(w, `{"Name":"key","SecretString":"{\"kty\":\"EC\"}"}`)
		case "throttled":
			w.WriteHeader(400)
			io.WriteString(w, `{"__type":"ThrottlingException"}`)
		default:
			w.WriteHeader(400)
			io.WriteString(w, `{"__type":"ResourceNotFoundException","message":"no"}`)
		}
	}))
	defer srv.Close()
	cfg := awstest.Config()
	cfg.BaseEndpoint = aws.String(srv.URL)
	ctx := context.Background()
	if got, err := secrets.Get(ctx, cfg, "key"); err != nil || got != `{"kty":"EC"}` {
		t.Errorf("Get(key) = %q, %v; want the secret string", got, err)
	}
	for id, code := range map[string]string{"missing": bulk.ENOTFOUND, "throttled": bulk.ETRANSIENT, "": bulk.EINVALID} {
		if _, err := secrets.Get(ctx, cfg, id); bulk.ErrorCode(err) != code {
			t.Errorf("Get(%q) error = %v, want %s", id, err, code)
		}
	}
}

func TestEndpoint(t *testing.T) {
	// The regional endpoint in the region's partition.
	for region, want := range map[string]string{
		"eu-west-1":      "https://secretsmanager.eu-west-1.amazonaws.com",
		"us-gov-west-1":  "https://secretsmanager.us-gov-west-1.amazonaws.com",
		"cn-northwest-1": "https://secretsmanager.cn-northwest-1.amazonaws.com.cn",
		"us-iso-east-1":  "https://secretsmanager.us-iso-east-1.c2s.ic.gov",
	} {
		t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "")
		if got := secrets.Endpoint(aws.Config{Region: region}); got != want {
			t.Errorf("Endpoint() in %s = %s, want %s", region, got, want)
		}
	}
	cfg := aws.Config{Region: "eu-west-1"}
	cfg.BaseEndpoint = aws.String("http://localhost:4566/")
	if got := secrets.Endpoint(cfg); got != "http://localhost:4566" {
		t.Errorf("Endpoint() with AWS_ENDPOINT_URL = %s, want it", got)
	}
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:9")
	if got := secrets.Endpoint(cfg); got != "http://127.0.0.1:9" {
		t.Errorf("Endpoint() with AWS_ENDPOINT_URL_SECRETS_MANAGER = %s, want it", got)
	}
}
