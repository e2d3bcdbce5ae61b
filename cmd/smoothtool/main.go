// Command smoothtool controls a running smoothserve.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "smoothtool: the control channel is not built yet")
	os.Exit(1)
}
