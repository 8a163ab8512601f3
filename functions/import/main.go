// Command import loads the NDJSON and Bundle files dropped under the bucket's
// incoming/ prefix (S3 ObjectCreated events) with the same importer as
// `tranche import`, writing a report and the bad lines under import-reports/.
package main

import (
	"context"

	"github.com/tranchehq/tranche/internal/app"
)

func main() {
	app.StartLambda("import", func(_ context.Context, a *app.AWS) (any, error) {
		im, err := a.Importer()
		if err != nil {
			return nil, err
		}
		return im.Handle, nil
	})
}
