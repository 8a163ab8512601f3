package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/importer"
)

// ErrNoServer is Dial's error when no server answers on the socket: there
// is none, or it is a crashed server's.
var ErrNoServer = errors.New("no tranche server answers on the admin socket")

// Client is a running server's admin API.
type Client struct {
	// Info is what the server said of itself when dialled.
	Info Info
	http *http.Client
}

// dialTimeout bounds Dial's first request: a server that accepts and does
// not answer is as good as none, and the command should say so.
const dialTimeout = 5 * time.Second

// Dial connects to the server serving dataDir. Returns ErrNoServer if none
// answers on its socket, and an error if the socket belongs to another
// user (it is not this user's server) or the server does not answer.
func Dial(ctx context.Context, dataDir string) (*Client, error) {
	path := SocketPath(dataDir)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoServer
	} else if err != nil {
		return nil, err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return nil, fmt.Errorf("%s is not a socket", path)
	}
	if uid, ok := owner(fi); ok && uid != os.Getuid() {
		return nil, fmt.Errorf("%s belongs to user %d, not to you (%d): not talking to it", path, uid, os.Getuid())
	}
	c := &Client{http: &http.Client{Transport: &http.Transport{DialContext: dialer(path), DisableCompression: true}}}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := c.do(dctx, "GET", "/v1/info", nil, &c.Info); err != nil {
		c.Close()
		if refused(err) {
			return nil, ErrNoServer
		}
		if dctx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("the server on %s does not answer within %v", path, dialTimeout)
		}
		return nil, err
	}
	return c, nil
}

// Close releases the client's connections.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// AddClient implements Operations.
func (c *Client) AddClient(ctx context.Context, req AddClientRequest) (*bulk.Client, error) {
	var out bulk.Client
	if err := c.do(ctx, "POST", "/v1/clients", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListClients implements Operations.
func (c *Client) ListClients(ctx context.Context) ([]*bulk.Client, error) {
	var out []*bulk.Client
	return out, c.do(ctx, "GET", "/v1/clients", nil, &out)
}

// RemoveClient implements Operations.
func (c *Client) RemoveClient(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/v1/clients/"+url.PathEscape(id), nil, nil)
}

// Stats implements Operations.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	var out Stats
	if err := c.do(ctx, "GET", "/v1/stats", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Import implements Operations: the server reads the files and streams its
// progress. Cancelling ctx stops the import on the server too; what it
// stored until then stays stored.
func (c *Client) Import(ctx context.Context, req ImportRequest, progress func(importer.Progress)) (importer.Report, error) {
	rep := importer.Report{Resources: map[string]int64{}}
	res, err := c.send(ctx, "POST", "/v1/import", req)
	if err != nil {
		return rep, err
	}
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var ev ImportEvent
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			return rep, fmt.Errorf("the server ended the import without a report (it may have stopped): %w", err)
		}
		switch {
		case ev.Report != nil:
			rep = *ev.Report
			if rep.Resources == nil {
				rep.Resources = map[string]int64{}
			}
			if ev.Error != nil {
				return rep, bulk.Errorf(ev.Error.Code, "%s", ev.Error.Message)
			}
			return rep, nil
		case ev.Progress != nil && progress != nil:
			progress(*ev.Progress)
		}
	}
}

// do sends body (JSON, nil for none) and decodes the response into out
// (nil: ignore it).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	res, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		return nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("the server's answer to %s %s: %w", method, path, err)
	}
	return nil
}

// send returns a 2xx response, or the error the server answered with.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://tranche"+path, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode/100 == 2 {
		return res, nil
	}
	defer res.Body.Close()
	var eb ErrorBody
	if err := json.NewDecoder(io.LimitReader(res.Body, maxBody)).Decode(&eb); err != nil || eb.Code == "" {
		return nil, fmt.Errorf("the server answered %s %s with %s", method, path, res.Status)
	}
	return nil, bulk.Errorf(eb.Code, "%s", eb.Message)
}
