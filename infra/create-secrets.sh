#!/usr/bin/env bash
# Creates the stack's two secrets in Secrets Manager and prints the
# parameter overrides for `sam deploy`:
#   - NAME/signing-key: the access-token signing key (a private JWK made by
#     infra/keygen), which never appears in the template or an environment;
#   - NAME/registration-token: the operator's initial access token for
#     POST /register (RFC 7591 §3). Keep it to register clients.
#
#   infra/create-secrets.sh [NAME]          # AWS (aws CLI)
#   AWS=awslocal infra/create-secrets.sh    # LocalStack
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-tranche}
aws_cli=${AWS:-aws}

key=$(go run ./infra/keygen)
token=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')

key_arn=$($aws_cli secretsmanager create-secret --name "$name/signing-key" \
  --description "Tranche access-token signing key (private JWK)" \
  --secret-string "$key" --query ARN --output text)
token_arn=$($aws_cli secretsmanager create-secret --name "$name/registration-token" \
  --description "Tranche initial access token for POST /register" \
  --secret-string "$token" --query ARN --output text)

echo "SigningKeySecretArn=$key_arn RegistrationTokenSecretArn=$token_arn"
echo "registration token: $token" >&2
