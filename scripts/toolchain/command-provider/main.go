// Command pulumi-resource-command is a wire-compatible implementation of the pulumi-command 1.2.1 resource
// provider (command:remote:Command, command:remote:CopyToRemote, command:remote:CopyFile, command:local:Command
// and the command:local:run function), for use with the unmodified @pulumi/command SDK.
package main

import (
	"fmt"
	"os"

	sdkprovider "github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println(providerVersion)
		return
	}
	err := sdkprovider.Main(providerName, func(host *sdkprovider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return newProvider(host), nil
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-command: %v\n", err)
		os.Exit(1)
	}
}
