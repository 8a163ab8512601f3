// Package admin is what operators do to a data dir: manage clients, import
// data and read its stats. The embedded store has one writer, the process
// that holds its file, so a running `tranche serve` offers these on a unix
// socket in the data dir (Listen, Handler) and the tranche commands use it
// (Dial, Client); on a stopped server they run a Service on the store
// directly. Both implement Operations.
package admin

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"

	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/fhir/defs"
	"github.com/tranchehq/tranche/internal/importer"
)

// Operations are the operator's commands.
type Operations interface {
	// AddClient registers a client with the validation of RFC 7591
	// registration. Returns EINVALID with the reason for bad metadata.
	AddClient(ctx context.Context, req AddClientRequest) (*bulk.Client, error)
	// ListClients returns the registered clients in id order.
	ListClients(ctx context.Context) ([]*bulk.Client, error)
	// RemoveClient removes a client. Returns ENOTFOUND if it does not
	// exist.
	RemoveClient(ctx context.Context, id string) error
	// Stats reports what the data dir holds.
	Stats(ctx context.Context) (*Stats, error)
	// Import loads files into the store, calling progress (which may be
	// nil) as importer.Options.Progress says. Returns EINVALID for a path
	// that is not absolute. The report counts what was stored, also when
	// the import fails.
	Import(ctx context.Context, req ImportRequest, progress func(importer.Progress)) (importer.Report, error)
}

var (
	_ Operations = (*Service)(nil)
	_ Operations = (*Client)(nil)
)

// AddClientRequest is a client to register.
type AddClientRequest struct {
	// Metadata is the RFC 7591 client metadata.
	Metadata json.RawMessage           `json:"metadata"`
	Defaults auth.RegistrationDefaults `json:"defaults"`
	// AllowLoopbackJWKS lets a jwks_uri name a loopback host.
	AllowLoopbackJWKS bool `json:"allowLoopbackJwks,omitempty"`
}

// ImportRequest is an import of files the server reads itself: the socket
// is its owner's only, so it reads nothing that user could not.
type ImportRequest struct {
	// Paths are absolute, or URLs ("scheme://...") left to the importer.
	Paths           []string `json:"paths"`
	KeepLastUpdated bool     `json:"keepLastUpdated,omitempty"`
	// FHIRVersion, when set, is the release the operator says the data
	// is: it must be the server's.
	FHIRVersion string `json:"fhirVersion,omitempty"`
}

// Stats is `tranche stats`.
type Stats struct {
	bulk.StoreStats
	// Jobs counts the export jobs kept, by status.
	Jobs map[bulk.Status]int `json:"jobs"`
	// FHIRVersion is the release the store holds ("" before the first
	// import).
	FHIRVersion string `json:"fhirVersion,omitempty"`
	// FileBytes is what the exports' output files hold on disk.
	FileBytes int64 `json:"fileBytes"`
	// Server is the server that answered, nil when the stats were read
	// from a stopped server's store.
	Server *Info `json:"server,omitempty"`
}

// Info describes a running server.
type Info struct {
	Version string `json:"version"`
	BaseURL string `json:"baseUrl"`
	PID     int    `json:"pid"`
}

// Service runs Operations on a store. Its fields are the ports it uses.
type Service struct {
	Clients   bulk.ClientStore
	Resources importer.Store // import's target
	Counts    bulk.StatsSource
	Jobs      bulk.JobReader // Stats counts the jobs by status
	// FileBytes returns the bytes of the output files (nil: 0).
	FileBytes func() (int64, error)
	// Info, when set, is the running server's, reported with its stats.
	Info *Info
	// FHIR, when set, is the release imports must be (a running server's).
	FHIR *fhir.Model
}

// AddClient implements Operations.
func (s *Service) AddClient(ctx context.Context, req AddClientRequest) (*bulk.Client, error) {
	a := &auth.Authority{Clients: s.Clients, Fetcher: &auth.JWKSFetcher{AllowLoopback: req.AllowLoopbackJWKS}}
	c, _, err := a.Register(ctx, req.Metadata, req.Defaults)
	if err != nil {
		if oe := auth.AsOAuthError(err); oe.Code != auth.ErrServerError.Code {
			return nil, bulk.Wrapf(err, bulk.EINVALID, "%s", oe.Description)
		}
		return nil, err
	}
	return c, nil
}

// ListClients implements Operations.
func (s *Service) ListClients(ctx context.Context) ([]*bulk.Client, error) {
	out := []*bulk.Client{}
	err := s.Clients.ListClients(ctx, func(c *bulk.Client) error {
		out = append(out, c)
		return nil
	})
	return out, err
}

// RemoveClient implements Operations.
func (s *Service) RemoveClient(ctx context.Context, id string) error {
	return s.Clients.DeleteClient(ctx, id)
}

// Stats implements Operations.
func (s *Service) Stats(ctx context.Context) (*Stats, error) {
	st, err := s.Counts.StoreStats(ctx)
	if err != nil {
		return nil, err
	}
	out := &Stats{StoreStats: *st, Jobs: map[bulk.Status]int{}, Server: s.Info}
	if vs, ok := s.Resources.(bulk.FHIRVersionStore); ok {
		if out.FHIRVersion, err = vs.FHIRVersion(ctx); err != nil {
			return nil, err
		}
	}
	err = s.Jobs.ListJobs(ctx, func(j *bulk.Job) error {
		out.Jobs[j.Status]++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if s.FileBytes != nil {
		if out.FileBytes, err = s.FileBytes(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Import implements Operations.
func (s *Service) Import(ctx context.Context, req ImportRequest, progress func(importer.Progress)) (importer.Report, error) {
	empty := importer.Report{Resources: map[string]int64{}}
	if len(req.Paths) == 0 {
		return empty, bulk.Errorf(bulk.EINVALID, "An import needs at least one path.")
	}
	for _, p := range req.Paths {
		if !filepath.IsAbs(p) && !strings.Contains(p, "://") {
			return empty, bulk.Errorf(bulk.EINVALID, "The path %q is not absolute: the server does not share your working directory.", p)
		}
	}
	if req.FHIRVersion != "" && s.FHIR != nil {
		v, err := defs.ParseVersion(req.FHIRVersion)
		if err != nil {
			return empty, bulk.Errorf(bulk.EINVALID, "%v", err)
		}
		if v != s.FHIR.Version {
			return empty, bulk.VersionConflict(string(s.FHIR.Version), string(v))
		}
	}
	return importer.Import(ctx, s.Resources, importer.Options{KeepLastUpdated: req.KeepLastUpdated, Progress: progress, FHIR: s.FHIR}, req.Paths...)
}
