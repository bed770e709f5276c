//go:build tools

package tools

import _ "github.com/benbjohnson/litestream/cmd/litestream"
