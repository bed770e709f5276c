// Wrapper module: builds the pulumi-command provider 1.2.1 (release commit 7f3eb6f3b77c) from Go
// modules. A module of its own because it needs other pulumi sdk versions than the CLI.
module pulumitoolchain/command

go 1.24

require github.com/pulumi/pulumi-command/provider v0.0.0-20260303235922-7f3eb6f3b77c
