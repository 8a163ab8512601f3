package dynamodb

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
)

// A job's request is in its item's doc unless its JSON is over
// inlineRequestBytes: 10,000 `patient` values (fhir.MaxPatients), with a
// lenient kick-off's message for each it ignored, are megabytes, past
// DynamoDB's 400 KB item limit (issue 12 item 4). Such a request is stored
// gzipped in chunk items of the Jobs table, pk
// "request#{job}#{request id}#{n}", in the same transaction as the write of
// the job item that names them (attributes "req", the request id, and
// "rparts", the chunk count); the doc then holds the job without its
// request. The Jobs table, not JobItems, because every function that reads
// a job may GetItem there, Kickoff may PutItem there (its transaction with
// the quota counter) and the two that delete jobs (Status's DELETE, Purge)
// may DeleteItem there: no new IAM grant. A fresh request id per write
// keeps a rewritten request's chunks apart from those it replaces, and the
// chunks carry the job item's TTL, updated with it, so TTL never takes
// them from a job it keeps.

const (
	// inlineRequestBytes is the largest request JSON kept in the doc.
	inlineRequestBytes = 64 << 10
	// requestPrefix starts the pk of request chunks, which no job id may
	// start with.
	requestPrefix = "request#"
	attrReq       = "req"
	attrReqParts  = "rparts"
)

// requestRef names a job's request chunks; the zero value means the
// request is in the doc.
type requestRef struct {
	id    string
	parts int
}

func requestRefOf(item map[string]types.AttributeValue) requestRef {
	return requestRef{id: getS(item, attrReq), parts: int(getN(item, attrReqParts))}
}

func (r requestRef) key(jobID string, i int) map[string]types.AttributeValue {
	return key(fmt.Sprintf("%s%s#%s#%03d", requestPrefix, jobID, r.id, i))
}

// reservedID reports whether pk is no job's: a quota counter or a request
// chunk.
func reservedID(pk string) bool {
	return strings.HasPrefix(pk, counterPrefix) || strings.HasPrefix(pk, requestPrefix)
}

// encodeJob returns the doc of j, whose request's JSON is req, and, for a
// request over inlineRequestBytes, that request gzipped in chunks: the doc
// then has an empty request.
func encodeJob(j *bulk.Job, req []byte) (doc []byte, chunks [][]byte, err error) {
	if len(req) <= inlineRequestBytes {
		doc, err = json.Marshal(j)
		return doc, nil, err
	}
	apart := *j
	apart.Request = bulk.ExportRequest{}
	if doc, err = json.Marshal(&apart); err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(req)
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	for z := buf.Bytes(); len(z) > 0; {
		part := z[:min(planChunkBytes, len(z))]
		chunks, z = append(chunks, part), z[len(part):]
	}
	return doc, chunks, nil
}

// readJob decodes a job item with its request. When the request's chunks
// are gone because the job was deleted or its request rewritten since item
// was read, it reads the item again: ENOTFOUND if the job is gone. It
// returns the item it decoded.
func (s *JobStore) readJob(ctx context.Context, id string, item map[string]types.AttributeValue) (*bulk.Job, map[string]types.AttributeValue, error) {
	for {
		j, err := decodeJob(item)
		if err != nil {
			return nil, nil, err
		}
		ref := requestRefOf(item)
		if ref.id == "" {
			return j, item, nil
		}
		req, found, err := s.loadRequest(ctx, id, ref)
		if err != nil {
			return nil, nil, err
		}
		if found {
			j.Request = *req
			return j, item, nil
		}
		if item, err = s.jobItem(ctx, id); err != nil {
			return nil, nil, err
		}
		if requestRefOf(item) == ref {
			return nil, nil, bulk.Errorf(bulk.EINTERNAL, "Job %s's request is missing chunks.", id)
		}
	}
}

// loadRequest reads and decodes the request chunks ref names; found is
// false when one is missing.
func (s *JobStore) loadRequest(ctx context.Context, jobID string, ref requestRef) (_ *bulk.ExportRequest, found bool, err error) {
	var z bytes.Buffer
	for i := range ref.parts {
		out, err := s.api.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(s.jobs), Key: ref.key(jobID, i), ConsistentRead: aws.Bool(true)})
		if err != nil {
			return nil, false, translate(err, "get job request failed")
		}
		if len(out.Item) == 0 {
			return nil, false, nil
		}
		z.Write(getB(out.Item, attrData))
	}
	unreadable := func(err error) error { return bulk.Wrapf(err, bulk.EINTERNAL, "Stored job request is unreadable.") }
	zr, err := gzip.NewReader(&z)
	if err != nil {
		return nil, false, unreadable(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, false, unreadable(err)
	}
	var req bulk.ExportRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, false, unreadable(err)
	}
	return &req, true, nil
}

// putRequest returns the transaction's Puts of chunks under ref.
func (s *JobStore) putRequest(jobID string, ref requestRef, chunks [][]byte, ttl types.AttributeValue) []types.TransactWriteItem {
	puts := make([]types.TransactWriteItem, len(chunks))
	for i, c := range chunks {
		item := ref.key(jobID, i)
		item[attrData], item[attrTTL] = b(c), ttl
		puts[i] = types.TransactWriteItem{Put: &types.Put{TableName: aws.String(s.jobs), Item: item}}
	}
	return puts
}

// requestWrite is what a write of job j (its request's JSON req, that of
// the stored job old) does to the request item stores under ref. An
// unchanged request stays where it is, inline (whatever its size: it fit
// when it was written) or in its chunks, whose TTL follows the job item's
// (ttl); that takes no grant beyond UpdateItem, which every function that
// changes a job has. A changed request (no caller changes one) is stored
// anew by encodeJob's rule, the old chunks deleted in the same
// transaction. It returns the doc to write and sets the item's request
// attributes in u.
func (s *JobStore) requestWrite(id string, j *bulk.Job, req, old []byte, item map[string]types.AttributeValue, ttl types.AttributeValue, u *jobUpdate) ([]byte, []types.TransactWriteItem, error) {
	ref := requestRefOf(item)
	if bytes.Equal(req, old) {
		if ref.id == "" {
			doc, err := json.Marshal(j)
			return doc, nil, err
		}
		apart := *j
		apart.Request = bulk.ExportRequest{}
		doc, err := json.Marshal(&apart)
		if err != nil || sameNumber(item[attrTTL], ttl) {
			return doc, nil, err
		}
		return doc, s.touchRequest(id, ref, ttl), nil
	}
	doc, chunks, err := encodeJob(j, req)
	if err != nil {
		return nil, nil, err
	}
	var actions []types.TransactWriteItem
	if len(chunks) > 0 {
		next := requestRef{id: s.random(), parts: len(chunks)}
		u.set = append(u.set, attrReq+" = :req", attrReqParts+" = :rparts")
		u.values[":req"], u.values[":rparts"] = sv(next.id), n(int64(next.parts))
		actions = s.putRequest(id, next, chunks, ttl)
	} else if ref.id != "" {
		u.remove = append(u.remove, attrReq, attrReqParts)
	}
	for i := range ref.parts {
		actions = append(actions, types.TransactWriteItem{Delete: &types.Delete{TableName: aws.String(s.jobs), Key: ref.key(id, i)}})
	}
	return doc, actions, nil
}

// touchRequest returns the transaction's updates of the chunks' TTL.
func (s *JobStore) touchRequest(id string, ref requestRef, ttl types.AttributeValue) []types.TransactWriteItem {
	var actions []types.TransactWriteItem
	for i := range ref.parts {
		actions = append(actions, types.TransactWriteItem{Update: &types.Update{
			TableName: aws.String(s.jobs), Key: ref.key(id, i),
			UpdateExpression:          aws.String("SET #ttl = :ttl"),
			ConditionExpression:       aws.String("attribute_exists(pk)"),
			ExpressionAttributeNames:  map[string]string{"#ttl": attrTTL},
			ExpressionAttributeValues: map[string]types.AttributeValue{":ttl": ttl},
		}})
	}
	return actions
}

// dropRequest deletes the chunks of a deleted job's request; TTL removes
// any a failure leaves.
func (s *JobStore) dropRequest(ctx context.Context, id string, ref requestRef) error {
	for i := range ref.parts {
		if _, err := s.api.DeleteItem(ctx, &ddb.DeleteItemInput{TableName: aws.String(s.jobs), Key: ref.key(id, i)}); err != nil {
			return translate(err, "delete job request failed")
		}
	}
	return nil
}

// sameNumber reports whether a and b are the same number.
func sameNumber(a, b types.AttributeValue) bool {
	x, ok1 := a.(*types.AttributeValueMemberN)
	y, ok2 := b.(*types.AttributeValueMemberN)
	return ok1 && ok2 && x.Value == y.Value
}

// jobUpdate collects the clauses of an UpdateItem's expression.
type jobUpdate struct {
	set, remove []string
	names       map[string]string
	values      map[string]types.AttributeValue
}

func (u *jobUpdate) expression() string {
	e := "SET " + strings.Join(u.set, ", ")
	if len(u.remove) > 0 {
		e += " REMOVE " + strings.Join(u.remove, ", ")
	}
	return e
}
