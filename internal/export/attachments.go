package export

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
)

// Attachments (issue 15 item 9; requirements 4 "Attachments and Binary",
// R84–R86). Every Attachment the output holds, at any depth
// (DocumentReference.content.attachment, DiagnosticReport.presentedForm,
// Patient.photo, ...), gets an absolute url its client can fetch with the
// same access token and nothing else:
//
//   - a url `Binary/{id}` naming a stored Binary (the usual way a
//     DocumentReference points at its document, R84) is replaced by the URL
//     of a file holding the Binary's content, once that Binary names no
//     patient outside the export and was stored by transactionTime; a
//     Binary the client may not see keeps its relative url;
//   - inline data larger than Config.AttachmentInlineMax (decoded) moves to
//     a file of its own, and the url names it;
//   - absolute urls, and data within the limit, stay as they are.
//
// The files sit under the job's attachments/ prefix, are listed in no
// manifest array, and are served by the file route to the job's owner whose
// token may read the resource type holding the Attachment (fileScopes); they
// go with the job. Their names derive from the resource and the
// Attachment's place in it, so a retried item rewrites the same files.

// attachmentElements are the elements of an Attachment (R4, plus R5's
// height, width, frames, duration and pages): an object with only these,
// and data or a url, is taken for one.
var attachmentElements = map[string]bool{
	"id": true, "extension": true, "contentType": true, "language": true, "data": true, "url": true,
	"size": true, "hash": true, "title": true, "creation": true,
	"height": true, "width": true, "frames": true, "duration": true, "pages": true,
}

// AttachmentsPrefix is the folder of a job's attachment files.
const AttachmentsPrefix = "attachments/"

// attachmentKey names the file of the k-th rewritten Attachment of
// typ/id. The file route reads the type from the name (fileScopes).
func attachmentKey(jobID, typ, id string, k int) string {
	return fmt.Sprintf("%s/%s%s.%s.%d", jobID, AttachmentsPrefix, typ, id, k)
}

// attachments returns body with its Attachments rewritten (see above).
func (x *itemRun) attachments(ctx context.Context, r *bulk.Resource, body []byte) ([]byte, error) {
	if x.job.Request.BaseURL == "" || !mayRewrite(body, x.s.Config.AttachmentInlineMax) || !mayHoldAttachment(body) {
		// No URL to write (a job kicked off before BaseURL), or nothing
		// the walk below would rewrite.
		return body, nil
	}
	return x.rewriteAttachments(ctx, r, body)
}

// mayHoldAttachment is the first test attachments ran on every body: an
// Attachment has contentType, data or a url to a Binary. It stays, after
// mayRewrite, so that no body is walked that was not walked before.
func mayHoldAttachment(body []byte) bool {
	return bytes.Contains(body, []byte(`"contentType"`)) || bytes.Contains(body, []byte(`"data"`)) || bytes.Contains(body, []byte(`"Binary/`))
}

// mayRewrite reports whether the walk could rewrite an Attachment of body
// (or fail), with inlineMax Config.AttachmentInlineMax: false means
// attachments returns body as it is, so it need not be walked. attachment
// rewrites only
//
//   - data whose decoded length is over inlineMax: the data, unescaped,
//     is no longer than body, so body must be longer than that too;
//   - a url that ParseReference takes for a relative Binary/{id}: a string
//     that, unescaped, starts with "Binary/" (see mayNameBinary);
//
// and fails only after it has found one of those. mayHoldAttachment's
// three scans ran at about 0.7 GB/s of one core here, 15–26% of a 1M
// export's CPU; this test, at about the speed of bytes.IndexByte (12 GB/s
// on generated and synthea bodies), leaves mayHoldAttachment only the
// bodies it lets through: few, unless they are larger than the data worth
// moving.
func mayRewrite(body []byte, inlineMax int64) bool {
	if inlineMax >= 0 && int64(base64.StdEncoding.DecodedLen(len(body))) > inlineMax {
		return true
	}
	return mayNameBinary(body)
}

// binaryPrefix starts every relative reference to a Binary.
const binaryPrefix = "Binary/"

// mayNameBinary reports whether body may hold a JSON string that, unescaped,
// starts with binaryPrefix: after its opening quote, the prefix as it is, or
// a part of it followed by a backslash (an escape). It looks only at the
// 'B's and backslashes that follow a quote, which FHIR JSON has few of.
func mayNameBinary(body []byte) bool {
	for i := 1; i < len(body); i++ {
		j := bytes.IndexByte(body[i:], 'B')
		if j < 0 {
			break
		}
		if i += j; body[i-1] != '"' {
			continue
		}
		rest, k := body[i:], 0
		for k < len(binaryPrefix) && k < len(rest) && rest[k] == binaryPrefix[k] {
			k++
		}
		if k == len(binaryPrefix) || k < len(rest) && rest[k] == '\\' {
			return true
		}
	}
	for i := 1; i < len(body); i++ {
		j := bytes.IndexByte(body[i:], '\\')
		if j < 0 {
			break
		}
		if i += j; body[i-1] == '"' {
			return true
		}
	}
	return false
}

// rewriteAttachments walks body for Attachments and rewrites them (see
// attachments).
func (x *itemRun) rewriteAttachments(ctx context.Context, r *bulk.Resource, body []byte) ([]byte, error) {
	type edit struct {
		path string
		raw  string
	}
	var (
		edits []edit
		k     int
		err   error
	)
	var walk func(path string, v gjson.Result)
	walk = func(path string, v gjson.Result) {
		if err != nil {
			return
		}
		if v.IsObject() && path != "" && isAttachment(v) {
			var raw string
			if raw, err = x.attachment(ctx, r, v, k); err == nil && raw != "" {
				edits = append(edits, edit{path, raw})
			}
			k++
			return
		}
		if !v.IsObject() && !v.IsArray() {
			return
		}
		i := 0
		v.ForEach(func(key, c gjson.Result) bool {
			name := key.String()
			if v.IsArray() {
				name = strconv.Itoa(i)
				i++
			}
			if path != "" {
				name = path + "." + name
			}
			walk(name, c)
			return err == nil
		})
	}
	walk("", gjson.ParseBytes(body))
	if err != nil || len(edits) == 0 {
		return body, err
	}
	out := body
	for _, e := range edits {
		if out, err = sjson.SetRawBytes(out, e.path, []byte(e.raw)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func isAttachment(v gjson.Result) bool {
	ok, content := true, false
	v.ForEach(func(key, val gjson.Result) bool {
		name := key.String()
		ok = attachmentElements[name]
		if (name == "data" || name == "url") && val.Type == gjson.String {
			content = true
		}
		return ok
	})
	return ok && content
}

// attachment returns the rewritten Attachment v, the k-th of r, or "" to
// keep it.
func (x *itemRun) attachment(ctx context.Context, r *bulk.Resource, v gjson.Result, k int) (string, error) {
	var content []byte
	contentType := v.Get("contentType").String()
	if data := v.Get("data").String(); data != "" {
		if max := x.s.Config.AttachmentInlineMax; max < 0 || int64(base64.StdEncoding.DecodedLen(len(data))) <= max {
			return "", nil
		}
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return "", nil // not base64: left for the client to judge
		}
		content = b
	} else {
		u := v.Get("url").String()
		typ, id, ok := fhir.ParseReference(u)
		if strings.Contains(u, "://") || !ok || typ != "Binary" {
			return "", nil
		}
		bin, err := x.s.Resources.Get(ctx, "Binary", id)
		if bulk.ErrorCode(err) == bulk.ENOTFOUND {
			return "", nil
		} else if err != nil {
			return "", err
		}
		if bin.LastUpdated.After(x.plan.Range.Until) {
			return "", nil
		}
		if ok, err := x.namesOnlyExported(ctx, bin); err != nil || !ok {
			return "", err
		}
		b := gjson.GetBytes(bin.Body, "data").String()
		if content, err = base64.StdEncoding.DecodeString(b); err != nil {
			return "", nil
		}
		if contentType == "" {
			contentType = gjson.GetBytes(bin.Body, "contentType").String()
		}
	}
	key := attachmentKey(x.job.ID, r.Type, r.ID, k)
	w, err := x.s.Objects.Create(ctx, key)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(content); err != nil {
		_ = w.Abort()
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	x.attached = append(x.attached, key)

	// The same elements in the same order, data dropped, url set, and
	// contentType and size filled in when missing.
	raw := []byte(v.Raw)
	var err2 error
	if raw, err2 = sjson.DeleteBytes(raw, "data"); err2 == nil && contentType != "" && !v.Get("contentType").Exists() {
		raw, err2 = sjson.SetBytes(raw, "contentType", contentType)
	}
	if err2 == nil {
		raw, err2 = sjson.SetBytes(raw, "url", x.job.Request.BaseURL+"/files/"+key)
	}
	if err2 == nil && !v.Get("size").Exists() {
		raw, err2 = sjson.SetBytes(raw, "size", len(content))
	}
	return string(raw), err2
}
