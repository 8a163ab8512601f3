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
	base := x.job.Request.BaseURL
	if base == "" || !bytes.Contains(body, []byte(`"contentType"`)) && !bytes.Contains(body, []byte(`"data"`)) && !bytes.Contains(body, []byte(`"Binary/`)) {
		// No URL to write (a job kicked off before BaseURL), or no
		// Attachment: one has contentType, data or a url to a Binary.
		return body, nil
	}
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
