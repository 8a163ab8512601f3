package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Manifest is a completed export's manifest (Bulk Data IG, complete status).
type Manifest struct {
	TransactionTime     string `json:"transactionTime"`
	Request             string `json:"request"`
	RequiresAccessToken bool   `json:"requiresAccessToken"`
	Output              []File `json:"output"`
	Deleted             []File `json:"deleted,omitempty"`
	Error               []File `json:"error"`
	// Outcome is the draft IG's name for Error; Poll moves it into Error.
	Outcome []File `json:"outcome,omitempty"`

	// Raw is the manifest as served, saved unchanged as manifest.json.
	Raw json.RawMessage `json:"-"`
	// Expires is the Expires header of the manifest response, if any.
	Expires time.Time `json:"-"`
}

// File is one manifest entry: an output, deleted or error file.
type File struct {
	Type string `json:"type,omitempty"`
	URL  string `json:"url"`
	// Count is the number of resources, when the server gives it.
	Count *int64 `json:"count,omitempty"`
	// FileSize is the size in bytes (draft IG), when given.
	FileSize int64 `json:"fileSize,omitempty"`
}

// ParseManifest reads a manifest.
func ParseManifest(raw []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest is not JSON: %w", err)
	}
	if len(m.Error) == 0 && len(m.Outcome) > 0 {
		m.Error, m.Outcome = m.Outcome, nil
	}
	for _, f := range append(append(append([]File(nil), m.Output...), m.Deleted...), m.Error...) {
		if f.URL == "" {
			return nil, fmt.Errorf("manifest lists a file without a url")
		}
	}
	m.Raw = append(json.RawMessage(nil), raw...)
	return &m, nil
}

// PollStatus is what one status poll saw, for progress display.
type PollStatus struct {
	// Status is the HTTP status of the poll (202 while running, or the
	// 429/5xx being retried).
	Status int
	// Progress is the X-Progress header (under 100 characters, free text).
	Progress string
	// Polls counts the status requests so far; Elapsed runs from the first.
	Polls   int
	Elapsed time.Duration
	// Wait is the pause before the next poll.
	Wait time.Duration
	// Err is the transient error being retried, if any.
	Err error
}

// Poll polls the status URL until the export completes and returns its
// manifest. It waits as long as Retry-After says (delay-seconds or
// HTTP-date) and backs off exponentially when the server gives none; 429,
// 5xx without an OperationOutcome, transient OperationOutcomes and network
// errors are retried up to MaxRetries times in a row. A non-transient 4xx or
// 5xx (a failed export, a deleted or unknown job) is an *Error carrying the
// OperationOutcome text (Bulk Data IG, status request). onProgress may be
// nil.
func (c *Client) Poll(ctx context.Context, statusURL string, onProgress func(PollStatus)) (*Manifest, error) {
	hc := c.httpClient()
	start := c.now()
	inProgress, failures := 0, 0
	for polls := 1; ; polls++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, statusURL, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		if err := c.authorize(ctx, req); err != nil {
			return nil, err
		}
		st := PollStatus{Polls: polls}
		res, err := hc.Do(req)
		switch {
		case err != nil:
			if !isTransientNetErr(ctx, err) {
				return nil, ctxErr(ctx, err)
			}
			st.Err = err
		case res.StatusCode == http.StatusOK:
			raw, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				st.Err = err
				break
			}
			m, err := ParseManifest(raw)
			if err != nil {
				return nil, fmt.Errorf("GET %s: %w", statusURL, err)
			}
			if t, err := http.ParseTime(res.Header.Get("Expires")); err == nil {
				m.Expires = t
			}
			return m, nil
		case res.StatusCode == http.StatusAccepted:
			_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
			res.Body.Close()
			st.Status, st.Progress = res.StatusCode, res.Header.Get("X-Progress")
			failures = 0
			if d, ok := parseRetryAfter(res.Header.Get("Retry-After"), c.now()); ok {
				st.Wait = d
			} else {
				st.Wait = c.backoff(inProgress)
			}
			inProgress++
		default:
			if failures == 0 && c.invalidate(res) {
				res.Body.Close()
				failures++
				continue
			}
			e := c.responseError(res)
			if !e.Transient {
				return nil, e
			}
			st.Status, st.Err = e.Status, e
			st.Wait = e.RetryAfter
		}
		if st.Err != nil {
			if failures >= c.maxRetries() {
				return nil, fmt.Errorf("export status: giving up after %d failed polls: %w", failures+1, st.Err)
			}
			if st.Wait == 0 {
				st.Wait = c.backoff(failures)
			}
			failures++
			c.logger().Warn("status poll failed; retrying", "url", statusURL, "err", st.Err, "wait", st.Wait)
		}
		st.Elapsed = c.now().Sub(start)
		if onProgress != nil {
			onProgress(st)
		}
		if err := c.sleep(ctx, st.Wait); err != nil {
			return nil, err
		}
	}
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
