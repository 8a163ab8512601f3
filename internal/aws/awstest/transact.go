package awstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// transactFronts holds one TransactFront per emulator URL for the whole
// test binary: tables outlive no test, but the front is stateless apart
// from its lock and the key schemas it caches.
var transactFronts sync.Map // target URL → front URL

// TransactFront returns the URL of a front to the DynamoDB emulator at
// target that runs TransactWriteItems, which dynalite does not implement
// (its readme's TODO), and forwards every other request unchanged. It
// applies a transaction's actions one by one as the emulator's own
// conditional PutItem, UpdateItem and DeleteItem (a ConditionCheck as a
// write of the item as it is), and on a failed condition puts back what
// the earlier actions changed and answers TransactionCanceledException
// with CancellationReasons as DynamoDB does
// (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html),
// except that it names only the first failed condition.
// A transaction holds a lock that every other request through the front
// shares, so no request sees one half applied: the front is atomic and
// isolated for the clients that use it, which is every test's
// (DynamoDBEndpoint), not for a client of the emulator itself.
func TransactFront(target string) string {
	if u, ok := transactFronts.Load(target); ok {
		return u.(string)
	}
	u, err := url.Parse(target)
	if err != nil {
		panic(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	// dynalite (Node) closes a keep-alive connection idle for 5 s; one
	// reused at that moment cut a response short. Close ours first.
	proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Second}
	f := &transactFront{target: target, proxy: proxy}
	srv := httptest.NewServer(f)
	actual, loaded := transactFronts.LoadOrStore(target, srv.URL)
	if loaded {
		srv.Close()
	}
	return actual.(string)
}

type transactFront struct {
	target string
	proxy  *httputil.ReverseProxy
	mu     sync.RWMutex // held by a transaction, shared by every other request
	keys   sync.Map     // table → its key attribute names
}

const dynamoTarget = "DynamoDB_20120810."

func (f *transactFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") != dynamoTarget+"TransactWriteItems" {
		f.mu.RLock()
		defer f.mu.RUnlock()
		f.proxy.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	status, out := f.transact(r.Header, body)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

// txAction is one TransactItems entry: the fields of the single-item
// request it becomes.
type txAction struct {
	TableName                 string
	Key                       map[string]json.RawMessage `json:",omitempty"`
	Item                      map[string]json.RawMessage `json:",omitempty"`
	UpdateExpression          string                     `json:",omitempty"`
	ConditionExpression       string                     `json:",omitempty"`
	ExpressionAttributeNames  map[string]string          `json:",omitempty"`
	ExpressionAttributeValues map[string]json.RawMessage `json:",omitempty"`
}

// transact runs one TransactWriteItems body; it returns the HTTP status
// and body of the answer.
// It is one pass in DynamoDB's documented order (validate every action,
// check every condition, then apply all): splitting it would scatter that order.
func (f *transactFront) transact(h http.Header, body []byte) (int, []byte) {
	var in struct {
		TransactItems []map[string]txAction
	}
	if err := json.Unmarshal(body, &in); err != nil || len(in.TransactItems) == 0 || len(in.TransactItems) > 100 {
		return validation("TransactItems must hold 1 to 100 actions")
	}
	type step struct {
		kind string
		a    txAction
		old  map[string]json.RawMessage // the item before, nil if absent
	}
	steps := make([]step, len(in.TransactItems))
	seen := map[string]bool{}
	for i, item := range in.TransactItems {
		if len(item) != 1 {
			return validation("each TransactItems entry must have exactly one action")
		}
		for kind, a := range item {
			steps[i] = step{kind: kind, a: a}
		}
		st := &steps[i]
		if st.kind == "Put" {
			names, status, out := f.keyNames(h, st.a.TableName)
			if status != http.StatusOK {
				return status, out
			}
			st.a.Key = map[string]json.RawMessage{}
			for _, n := range names {
				st.a.Key[n] = st.a.Item[n]
			}
		}
		id, _ := json.Marshal([]any{st.a.TableName, canonical(st.a.Key)})
		if seen[string(id)] {
			return validation("Transaction request cannot include multiple operations on one item")
		}
		seen[string(id)] = true
		var got struct{ Item map[string]json.RawMessage }
		status, out := f.call(h, "GetItem", map[string]any{"TableName": st.a.TableName, "Key": st.a.Key, "ConsistentRead": true})
		if status != http.StatusOK {
			return status, out
		}
		_ = json.Unmarshal(out, &got)
		st.old = got.Item
	}
	undo := func(done int) {
		for _, st := range steps[:done] {
			if st.old != nil {
				f.call(h, "PutItem", map[string]any{"TableName": st.a.TableName, "Item": st.old})
			} else {
				f.call(h, "DeleteItem", map[string]any{"TableName": st.a.TableName, "Key": st.a.Key})
			}
		}
	}
	for i, st := range steps {
		a := st.a
		var op string
		switch st.kind {
		case "Put":
			op, a.Key = "PutItem", nil
		case "Update":
			op = "UpdateItem"
		case "Delete":
			op = "DeleteItem"
		case "ConditionCheck":
			// The condition, tested by a write that changes nothing.
			if st.old != nil {
				op, a.Key, a.Item = "PutItem", nil, st.old
			} else {
				op = "DeleteItem"
			}
		default:
			undo(i)
			return validation("unknown TransactItems action " + st.kind)
		}
		status, out := f.call(h, op, a)
		if status == http.StatusOK {
			continue
		}
		undo(i)
		var e struct {
			Type string `json:"__type"`
		}
		_ = json.Unmarshal(out, &e)
		if !strings.HasSuffix(e.Type, "#ConditionalCheckFailedException") {
			return status, out
		}
		reasons := make([]map[string]string, len(steps))
		codes := make([]string, len(steps))
		for j := range reasons {
			reasons[j], codes[j] = map[string]string{"Code": "None"}, "None"
		}
		reasons[i] = map[string]string{"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
		codes[i] = "ConditionalCheckFailed"
		b, _ := json.Marshal(map[string]any{
			"__type":              "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
			"message":             "Transaction cancelled, please refer cancellation reasons for specific reasons [" + strings.Join(codes, ", ") + "]",
			"CancellationReasons": reasons,
		})
		return http.StatusBadRequest, b
	}
	return http.StatusOK, []byte("{}")
}

// keyNames returns the key attribute names of table (DescribeTable, once
// per table).
func (f *transactFront) keyNames(h http.Header, table string) ([]string, int, []byte) {
	if names, ok := f.keys.Load(table); ok {
		return names.([]string), http.StatusOK, nil
	}
	status, out := f.call(h, "DescribeTable", map[string]any{"TableName": table})
	if status != http.StatusOK {
		return nil, status, out
	}
	var d struct {
		Table struct {
			KeySchema []struct{ AttributeName string }
		}
	}
	_ = json.Unmarshal(out, &d)
	var names []string
	for _, k := range d.Table.KeySchema {
		names = append(names, k.AttributeName)
	}
	f.keys.Store(table, names)
	return names, http.StatusOK, nil
}

// call sends one request to the emulator with the caller's credentials
// (an emulator checks that they are there, not the signature).
func (f *transactFront) call(h http.Header, op string, in any) (int, []byte) {
	body, err := json.Marshal(in)
	if err != nil {
		return validation(err.Error())
	}
	req, err := http.NewRequest(http.MethodPost, f.target, bytes.NewReader(body))
	if err != nil {
		return validation(err.Error())
	}
	for _, k := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} {
		if v := h.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", dynamoTarget+op)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b, _ := json.Marshal(map[string]string{"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": err.Error()})
		return http.StatusInternalServerError, b
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, out
}

// canonical decodes raw JSON values so that equal keys marshal equally.
func canonical(m map[string]json.RawMessage) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		var x any
		_ = json.Unmarshal(v, &x)
		out[k] = x
	}
	return out
}

func validation(msg string) (int, []byte) {
	b, _ := json.Marshal(map[string]string{"__type": "com.amazon.coral.validate#ValidationException", "message": fmt.Sprint(msg)})
	return http.StatusBadRequest, b
}
