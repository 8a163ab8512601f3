package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tranchehq/tranche/internal/admin"
	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/client"
	"github.com/tranchehq/tranche/internal/config"
	"github.com/tranchehq/tranche/internal/fhir"
)

const clientsUsage = `Usage:
  tranche clients add    [--data DIR] --name NAME (--jwks-file F | --jwks-uri URL | --generate-key CLIENT_FILE)
                         [--id ID] [--scope "system/*.rs"] [--groups g1,g2|*] [--types T1,T2] [--max-since-days N]
                         [--max-exports N] [--max-polls N] [--fhir BASE_URL]
  tranche clients list   [--data DIR]
  tranche clients remove [--data DIR] ID

Operators manage clients and their contracts here: the scopes a client may be
granted, the Groups it may export ("*" for all), the resource types (all when
not given), how many days back _since may reach (0: no limit) and its quotas.
A client limited to some Groups exports only their members' data: Group and
Patient level, never system level. While a server runs on the data dir,
these commands go through it (its admin socket, DIR/admin.sock); --fhir
then defaults to its base URL.
`

func clientsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, clientsUsage)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, clientsUsage)
		return flag.ErrHelp
	}
	cfg := config.Default()
	fs := newFlags("clients "+args[0], stderr)
	storeFlags(fs, &cfg)
	switch args[0] {
	case "add":
		return clientsAdd(ctx, fs, &cfg, args[1:], stdout, stderr)
	case "list":
		return clientsList(ctx, fs, &cfg, args[1:], stdout)
	case "remove":
		return clientsRemove(ctx, fs, &cfg, args[1:], stdout, stderr)
	default:
		fmt.Fprint(stderr, clientsUsage)
		return errUsage
	}
}

// clientsAdd is `tranche clients add`.
func clientsAdd(ctx context.Context, fs *flag.FlagSet, cfg *config.Config, args []string, stdout, stderr io.Writer) error {
	name := fs.String("name", "", "client name")
	jwksFile := fs.String("jwks-file", "", "file with the client's public JWKS")
	jwksURI := fs.String("jwks-uri", "", "URL of the client's JWKS (https)")
	loopback := fs.Bool("allow-loopback-jwks", false, "allow a jwks-uri on loopback (local testing)")
	genKey := fs.String("generate-key", "", "generate an ES384 key and write a client file here for `tranche export --client`")
	base := fs.String("fhir", "http://127.0.0.1:8080", "FHIR base URL written into a generated client file; with the server running, its own unless given")
	scope := fs.String("scope", "system/*.rs", "space-separated scopes the client may be granted")
	groups := fs.String("groups", "*", `comma-separated Group ids the client may export ("*": all, "": none)`)
	types := fs.String("types", "", "comma-separated resource types the client may export (default: all its scopes allow)")
	maxSinceDays := fs.Int("max-since-days", 0, "exports need a _since at most this many days back (0: no limit)")
	defaults := auth.RegistrationDefaults{}
	fs.IntVar(&defaults.MaxConcurrentExports, "max-exports", 0, "concurrent exports (0: server default)")
	fs.IntVar(&defaults.MaxPollsPerMinute, "max-polls", 0, "status polls per minute (0: server default)")
	if err := parse(fs, args); err != nil {
		return err
	}
	n := 0
	for _, s := range []string{*jwksFile, *jwksURI, *genKey} {
		if s != "" {
			n++
		}
	}
	if *name == "" || n != 1 || fs.NArg() > 0 {
		fmt.Fprint(stderr, clientsUsage)
		return errUsage
	}
	defaults.MaxScopes = strings.Fields(*scope)
	defaults.Groups = splitList(*groups)
	defaults.Types = splitList(*types)
	for _, t := range defaults.Types {
		if !fhir.IsResourceType(t) {
			return fmt.Errorf("--types: %q is not a resource type this server exports", t)
		}
	}
	if *maxSinceDays < 0 {
		return errors.New("--max-since-days must not be negative")
	}
	defaults.MaxLookback = time.Duration(*maxSinceDays) * 24 * time.Hour
	metadata, key, err := clientMetadata(*name, *scope, *jwksFile, *jwksURI)
	if err != nil {
		return err
	}
	var c *bulk.Client
	err = withOperations(ctx, *cfg, false, func(ops admin.Operations, server *admin.Info) (err error) {
		// The same validation as RFC 7591 registration: an operator's
		// typo fails here, not at the client's first token request.
		c, err = ops.AddClient(ctx, admin.AddClientRequest{Metadata: metadata, Defaults: defaults, AllowLoopbackJWKS: *loopback})
		if server != nil && !flagSet(fs, "fhir") {
			*base = server.BaseURL
		}
		return err
	})
	if err != nil {
		return err
	}
	if key != nil {
		if err := saveClientFile(c, key, *base, *scope, *genKey); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Wrote %s (private key: keep it safe).\n", *genKey)
	}
	fmt.Fprintf(stdout, "Added client %s (%s): scopes %q, groups %q, types %q, max since %s.\n", c.ID, c.Name,
		strings.Join(c.Scopes, " "), strings.Join(c.Groups, ","), orAll(c.Types), lookbackDays(c.MaxLookback))
	return nil
}

// clientMetadata is the RFC 7591 metadata of a client added by an operator,
// with the key generated for it when it gives neither a JWKS file nor a URI.
func clientMetadata(name, scope, jwksFile, jwksURI string) ([]byte, *client.Key, error) {
	md := map[string]any{"client_name": name, "scope": scope}
	var key *client.Key
	switch {
	case jwksFile != "":
		raw, err := os.ReadFile(jwksFile)
		if err != nil {
			return nil, nil, err
		}
		md["jwks"] = json.RawMessage(raw)
	case jwksURI != "":
		md["jwks_uri"] = jwksURI
	default:
		var err error
		if key, err = client.GenerateES384(); err != nil {
			return nil, nil, err
		}
		md["jwks"] = map[string]any{"keys": []client.JWK{key.PublicJWK()}}
	}
	metadata, err := json.Marshal(md)
	return metadata, key, err
}

// saveClientFile writes the client file of c, with its private key, to path.
func saveClientFile(c *bulk.Client, key *client.Key, base, scope, path string) error {
	cf := &client.ClientFile{ClientID: c.ID, TokenURL: strings.TrimRight(base, "/") + "/token",
		FHIRBaseURL: strings.TrimRight(base, "/"), Scope: scope}
	jwk, err := key.PrivateJWK()
	if err != nil {
		return err
	}
	if cf.PrivateJWK, err = json.Marshal(jwk); err != nil {
		return err
	}
	return cf.Save(path)
}

// clientsList is `tranche clients list`.
func clientsList(ctx context.Context, fs *flag.FlagSet, cfg *config.Config, args []string, stdout io.Writer) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	var cs []*bulk.Client
	err := withOperations(ctx, *cfg, true, func(ops admin.Operations, _ *admin.Info) (err error) {
		cs, err = ops.ListClients(ctx)
		return err
	})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tKEYS\tSCOPES\tGROUPS\tTYPES\tMAX SINCE\tMAX EXPORTS\tMAX POLLS/MIN")
	for _, c := range cs {
		keys := "jwks"
		if c.JWKSURI != "" {
			keys = c.JWKSURI
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Name, keys, strings.Join(c.Scopes, " "),
			strings.Join(c.Groups, ","), orAll(c.Types), lookbackDays(c.MaxLookback), orDefault(c.MaxConcurrentExports), orDefault(c.MaxPollsPerMinute))
	}
	return tw.Flush()
}

// clientsRemove is `tranche clients remove`.
func clientsRemove(ctx context.Context, fs *flag.FlagSet, cfg *config.Config, args []string, stdout, stderr io.Writer) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprint(stderr, clientsUsage)
		return errUsage
	}
	err := withOperations(ctx, *cfg, false, func(ops admin.Operations, _ *admin.Info) error {
		return ops.RemoveClient(ctx, fs.Arg(0))
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Removed client %s: its tokens stop working at once.\n", fs.Arg(0))
	return nil
}

// tokenCmd prints a fresh access token for curl users.
func tokenCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token", stderr)
	file := fs.String("client", "", "client file (e.g. .tranche/demo-client.json)")
	scope := fs.String("scope", "", "scope to request (default: the client file's)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *file == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "Usage: tranche token --client FILE [--scope S]")
		return errUsage
	}
	ts, _, err := exportAuth(authFlags{client: *file, scope: *scope})
	if err != nil {
		return err
	}
	if ts == nil {
		return errors.New("the client file has no private key")
	}
	tok, err := ts.Token(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// flagSet reports whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func orAll(types []string) string {
	if len(types) == 0 {
		return "all"
	}
	return strings.Join(types, ",")
}

// lookbackDays shows a contract's maximum look-back.
func lookbackDays(d time.Duration) string {
	if d <= 0 {
		return "no limit"
	}
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func orDefault(n int) string {
	if n == 0 {
		return "default"
	}
	return fmt.Sprint(n)
}
