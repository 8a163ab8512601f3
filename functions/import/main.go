// Command import loads the NDJSON and Bundle files dropped under the bucket's
// incoming/ prefix with the same importer as `tranche import`: S3 sends each
// ObjectCreated notification to the import queue, whose event source mapping
// delivers it here (handler.Importer.HandleSQS). It writes a report, the bad
// lines and a checkpoint under import-reports/; an import longer than an
// invocation continues in another from its checkpoint.
package main

import (
	"context"

	sqssdk "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/aws/handler"
)

func main() {
	app.StartLambda("import", func(_ context.Context, a *app.AWS) (any, error) {
		im, err := a.Importer()
		if err != nil {
			return nil, err
		}
		// The queue is the one each message names (its eventSourceARN);
		// the endpoint comes from the environment as for every client.
		im.Queue = handler.NewSQSQueue(sqssdk.NewFromConfig(a.SDK))
		im.MaxReceives = handler.ImportMaxReceives
		return im.HandleSQS, nil
	})
}
