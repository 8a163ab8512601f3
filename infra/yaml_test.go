package infra_test

import "github.com/tranchehq/tranche/internal/aws/cfn"

// parseYAML reads template.yaml's YAML subset (internal/aws/cfn).
func parseYAML(src string) (any, error) { return cfn.Parse(src) }
