package awstest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Recorder fronts the emulators (DynamoDB, S3, Step Functions, Secrets
// Manager) with proxies that turn every request into the IAM Calls AWS
// would authorize for it, under the caller's access key id, and forward it
// unchanged.
type Recorder struct {
	// Partition, Region and Account build the ARNs.
	Partition, Region, Account string

	mu    sync.Mutex
	calls []Call
}

// NewRecorder records ARNs in the bench's account and region.
func NewRecorder() *Recorder {
	return &Recorder{Partition: "aws", Region: "us-east-1", Account: "123456789012"}
}

// Record adds calls made outside the fronts (a Lambda invoke by the state
// machine).
func (r *Recorder) Record(calls ...Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, calls...)
}

// Calls returns every call recorded so far.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Services a Recorder fronts.
const (
	ServiceDynamoDB = "dynamodb"
	ServiceS3       = "s3"
	ServiceSFN      = "states"
	ServiceSecrets  = "secretsmanager"
)

// Front starts a proxy to target that records each request's calls, and
// returns its URL. A request it cannot map to IAM actions is recorded as
// the action "<service>:Unknown", which no policy allows.
func (r *Recorder) Front(tb testing.TB, service, target string) string {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body []byte
		// Only JSON protocols and S3's DeleteObjects carry the resource in
		// the body; object uploads stream through.
		if service != ServiceS3 || (req.Method == http.MethodPost && req.URL.Query().Has("delete")) {
			body, _ = io.ReadAll(req.Body)
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		principal := Principal(req)
		var calls []Call
		switch service {
		case ServiceDynamoDB:
			calls = r.dynamoCalls(req, body)
		case ServiceS3:
			calls = r.s3Calls(req, body)
		case ServiceSFN:
			calls = r.jsonCalls(req, body, "AWSStepFunctions.", "states:", map[string]string{
				"StartExecution": "stateMachineArn", "StopExecution": "executionArn", "DescribeExecution": "executionArn",
			})
		case ServiceSecrets:
			calls = r.jsonCalls(req, body, "secretsmanager.", "secretsmanager:", map[string]string{"GetSecretValue": "SecretId"})
		}
		for i := range calls {
			calls[i].Principal = principal
		}
		r.Record(calls...)
		proxy.ServeHTTP(w, req)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

// Principal is the access key id a SigV4 request was signed with, from
// the Authorization header or, for a presigned URL, X-Amz-Credential.
func Principal(req *http.Request) string {
	cred := req.URL.Query().Get("X-Amz-Credential")
	if auth := req.Header.Get("Authorization"); auth != "" {
		if _, after, ok := strings.Cut(auth, "Credential="); ok {
			cred = after
		}
	}
	id, _, _ := strings.Cut(cred, "/")
	return id
}

func (r *Recorder) arn(service, resource string) string {
	region, account := r.Region, r.Account
	if service == "s3" {
		region, account = "", ""
	}
	return "arn:" + r.Partition + ":" + service + ":" + region + ":" + account + ":" + resource
}

// dynamoCalls maps a DynamoDB request to its actions. Transactions are
// authorized as their parts' item actions (ConditionCheck as
// dynamodb:ConditionCheckItem):
// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html
func (r *Recorder) dynamoCalls(req *http.Request, body []byte) []Call {
	op := strings.TrimPrefix(req.Header.Get("X-Amz-Target"), "DynamoDB_20120810.")
	var in struct {
		TableName     string
		IndexName     string
		RequestItems  map[string]json.RawMessage
		TransactItems []map[string]struct{ TableName string }
	}
	_ = json.Unmarshal(body, &in)
	table := func(name string) string { return r.arn("dynamodb", "table/"+name) }
	via := "DynamoDB_20120810." + op
	var out []Call
	switch op {
	case "BatchGetItem", "BatchWriteItem":
		for name := range in.RequestItems {
			out = append(out, Call{Action: "dynamodb:" + op, Resource: table(name), Via: via})
		}
	case "TransactWriteItems", "TransactGetItems":
		parts := map[string]string{"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
		for _, item := range in.TransactItems {
			for kind, v := range item {
				action, ok := parts[kind]
				if !ok {
					action = "Unknown"
				}
				out = append(out, Call{Action: "dynamodb:" + action, Resource: table(v.TableName), Via: via})
			}
		}
	case "ListTables":
		out = append(out, Call{Action: "dynamodb:ListTables", Resource: "*", Via: via})
	default:
		res := table(in.TableName)
		if in.IndexName != "" {
			res += "/index/" + in.IndexName
		}
		if in.TableName == "" {
			op = "Unknown"
		}
		out = append(out, Call{Action: "dynamodb:" + op, Resource: res, Via: via})
	}
	return out
}

// jsonCalls maps an awsJson request whose resource is one field of its
// body.
func (r *Recorder) jsonCalls(req *http.Request, body []byte, targetPrefix, actionPrefix string, resourceField map[string]string) []Call {
	op := strings.TrimPrefix(req.Header.Get("X-Amz-Target"), targetPrefix)
	var in map[string]any
	_ = json.Unmarshal(body, &in)
	field, ok := resourceField[op]
	res, _ := in[field].(string)
	if !ok || res == "" {
		return []Call{{Action: actionPrefix + "Unknown", Resource: op, Via: req.Header.Get("X-Amz-Target")}}
	}
	return []Call{{Action: actionPrefix + op, Resource: res, Via: req.Header.Get("X-Amz-Target")}}
}

// s3Calls maps a path-style S3 request to its actions, as the S3 actions
// reference lists them
// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html):
// HeadObject needs s3:GetObject, a versioned read s3:GetObjectVersion,
// multipart parts s3:PutObject, DeleteObjects s3:DeleteObject per key,
// ListObjectsV2 and HeadBucket s3:ListBucket (with the s3:prefix
// condition key).
func (r *Recorder) s3Calls(req *http.Request, body []byte) []Call {
	path := strings.TrimPrefix(req.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	q := req.URL.Query()
	via := req.Method + " " + req.URL.RequestURI()
	obj := func(action, k string) Call {
		return Call{Action: "s3:" + action, Resource: r.arn("s3", bucket+"/"+k), Via: via}
	}
	if key == "" {
		bkt := func(action string, ctx map[string]string) Call {
			return Call{Action: "s3:" + action, Resource: r.arn("s3", bucket), Context: ctx, Via: via}
		}
		prefix := func() map[string]string {
			if q.Has("prefix") {
				return map[string]string{"s3:prefix": q.Get("prefix")}
			}
			return nil
		}
		switch {
		case req.Method == http.MethodPost && q.Has("delete"):
			var del struct {
				Objects []struct {
					Key       string
					VersionId string
				} `xml:"Object"`
			}
			_ = xml.Unmarshal(body, &del)
			var out []Call
			for _, o := range del.Objects {
				if o.VersionId != "" {
					out = append(out, obj("DeleteObjectVersion", o.Key))
				} else {
					out = append(out, obj("DeleteObject", o.Key))
				}
			}
			return out
		case (req.Method == http.MethodGet || req.Method == http.MethodHead) && q.Has("versions"):
			return []Call{bkt("ListBucketVersions", prefix())}
		case req.Method == http.MethodGet && q.Has("uploads"):
			return []Call{bkt("ListBucketMultipartUploads", prefix())}
		case req.Method == http.MethodGet && q.Has("location"):
			return []Call{bkt("GetBucketLocation", nil)}
		case req.Method == http.MethodGet || req.Method == http.MethodHead:
			return []Call{bkt("ListBucket", prefix())}
		case req.Method == http.MethodPut && q.Has("versioning"):
			return []Call{bkt("PutBucketVersioning", nil)}
		case req.Method == http.MethodPut:
			return []Call{bkt("CreateBucket", nil)}
		}
		return []Call{bkt("Unknown", nil)}
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case q.Has("uploadId"):
			return []Call{obj("ListMultipartUploadParts", key)}
		case q.Has("versionId"):
			return []Call{obj("GetObjectVersion", key)}
		}
		return []Call{obj("GetObject", key)}
	case http.MethodPut:
		out := []Call{obj("PutObject", key)}
		if src := req.Header.Get("X-Amz-Copy-Source"); src != "" {
			src, _ = url.PathUnescape(src)
			src, version, _ := strings.Cut(strings.TrimPrefix(src, "/"), "?versionId=")
			sb, sk, _ := strings.Cut(src, "/")
			c := Call{Action: "s3:GetObject", Resource: r.arn("s3", sb+"/"+sk), Via: via}
			if version != "" {
				c.Action = "s3:GetObjectVersion"
			}
			out = append(out, c)
		}
		return out
	case http.MethodPost:
		if q.Has("uploads") || q.Has("uploadId") {
			return []Call{obj("PutObject", key)}
		}
	case http.MethodDelete:
		switch {
		case q.Has("uploadId"):
			return []Call{obj("AbortMultipartUpload", key)}
		case q.Has("versionId"):
			return []Call{obj("DeleteObjectVersion", key)}
		}
		return []Call{obj("DeleteObject", key)}
	}
	return []Call{obj("Unknown", key)}
}
