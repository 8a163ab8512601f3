// Package secrets reads a secret from AWS Secrets Manager: the token
// signing key and the registration token, which the template passes as
// ARNs, never as values (style.md rule 7).
//
// It is a single GetSecretValue call, signed with the SDK's SigV4 signer
// and the credentials of the SDK configuration, so the deployment needs no
// Secrets Manager SDK module. Like the SDK clients it takes its endpoint
// from AWS_ENDPOINT_URL_SECRETS_MANAGER or AWS_ENDPOINT_URL (LocalStack),
// else the regional endpoint.
package secrets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/tranchehq/tranche/internal/bulk"
)

// Get returns the SecretString of the secret id (an ARN or a name).
func Get(ctx context.Context, cfg aws.Config, id string) (_ string, err error) {
	defer bulk.Wrap(&err, "secrets.Get(%q)", id)
	if id == "" {
		return "", bulk.Errorf(bulk.EINVALID, "No secret is named.")
	}
	if cfg.Credentials == nil {
		return "", bulk.Errorf(bulk.EINTERNAL, "No AWS credentials to read secret %s.", id)
	}
	body, err := json.Marshal(map[string]string{"SecretId": id})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, Endpoint(cfg)+"/", bytes.NewReader(body))
	if err != nil {
		return "", bulk.Wrapf(err, bulk.EINVALID, "The Secrets Manager endpoint is invalid.")
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return "", bulk.Wrapf(err, bulk.EINTERNAL, "No AWS credentials to read secret %s.", id)
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "secretsmanager", cfg.Region, time.Now()); err != nil {
		return "", bulk.Wrapf(err, bulk.EINTERNAL, "Signing the secret request failed.")
	}
	var client interface {
		Do(*http.Request) (*http.Response, error)
	} = http.DefaultClient
	if cfg.HTTPClient != nil {
		client = cfg.HTTPClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", bulk.Wrapf(err, bulk.ETRANSIENT, "Secrets Manager is unreachable.")
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", bulk.Wrapf(err, bulk.ETRANSIENT, "Reading the secret failed.")
	}
	var out struct {
		SecretString string `json:"SecretString"`
		Type         string `json:"__type"`
		Message      string `json:"message"`
	}
	_ = json.Unmarshal(raw, &out)
	switch {
	case resp.StatusCode == http.StatusOK && out.SecretString != "":
		return out.SecretString, nil
	case resp.StatusCode == http.StatusOK:
		return "", bulk.Errorf(bulk.EINVALID, "Secret %s has no string value.", id)
	case resp.StatusCode >= 500 || strings.HasSuffix(out.Type, "ThrottlingException"):
		return "", bulk.Errorf(bulk.ETRANSIENT, "Secrets Manager answered %d %s.", resp.StatusCode, out.Type)
	case strings.HasSuffix(out.Type, "ResourceNotFoundException"):
		return "", bulk.Errorf(bulk.ENOTFOUND, "Secret %s does not exist.", id)
	}
	return "", bulk.Errorf(bulk.EINTERNAL, "Secrets Manager answered %d %s: %s", resp.StatusCode, out.Type, out.Message)
}

// Endpoint is the Secrets Manager endpoint the SDK would use:
// AWS_ENDPOINT_URL_SECRETS_MANAGER, else AWS_ENDPOINT_URL (as the SDK
// configuration read it), else the regional endpoint.
func Endpoint(cfg aws.Config) string {
	if v := os.Getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER"); v != "" {
		return strings.TrimSuffix(v, "/")
	}
	if cfg.BaseEndpoint != nil && *cfg.BaseEndpoint != "" {
		return strings.TrimSuffix(*cfg.BaseEndpoint, "/")
	}
	return "https://secretsmanager." + cfg.Region + "." + dnsSuffix(cfg.Region)
}

// dnsSuffix is the DNS suffix of the region's partition, as the SDK's
// partition table (partitions.json) has it: the China regions are under
// amazonaws.com.cn and the ISO partitions have their own, so a
// deployment in aws-cn reads its secrets from its own partition.
func dnsSuffix(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "amazonaws.com.cn"
	case strings.HasPrefix(region, "us-isob-"):
		return "sc2s.sgov.gov"
	case strings.HasPrefix(region, "us-iso-"):
		return "c2s.ic.gov"
	case strings.HasPrefix(region, "eu-isoe-"):
		return "cloud.adc-e.uk"
	case strings.HasPrefix(region, "us-isof-"):
		return "csp.hci.ic.gov"
	}
	return "amazonaws.com"
}
