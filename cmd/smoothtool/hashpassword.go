package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"
)

// passwordCost is the bcrypt cost of the hashes hash-password prints:
// about a quarter of a second per check on a current CPU. A variable for
// the tests, which the race detector makes 100 times slower.
var passwordCost = 12

// runHashPassword is `smoothtool hash-password`: it reads a password
// (from the terminal without echo, asked twice; otherwise the first line
// of stdin) and prints its bcrypt hash for AdminAuth. It needs no
// configuration and no daemon.
func runHashPassword(stdin *os.File, stdout, stderr io.Writer) int {
	var (
		pw  string
		err error
	)
	if isTerminal(stdin) {
		pw, err = askPassword(stdin, stderr)
	} else {
		pw, err = readLine(stdin)
	}
	if err == nil {
		err = printHash(pw, passwordCost, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "smoothtool: hash-password: %v\n", err)
		return 1
	}
	return 0
}

// printHash prints the hash of pw on out and how to use it on notes.
func printHash(pw string, cost int, out, notes io.Writer) error {
	switch {
	case pw == "":
		return errors.New("empty password")
	case len(pw) > 72:
		return fmt.Errorf("password of %d bytes: bcrypt reads only the first 72", len(pw))
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return err
	}
	fmt.Fprintf(notes, "smoothtool: put it in smoothserve.yaml as  AdminAuth: [\"USER:%s\"]\n", hash)
	_, err = fmt.Fprintf(out, "%s\n", hash)
	return err
}

// readLine reads the first line of r, without its line end.
func readLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		if err == io.EOF {
			return "", errors.New("no password on stdin")
		}
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// askPassword reads a password twice from the terminal tty with its echo
// off, and restores the terminal whatever happens, Ctrl-C included.
func askPassword(tty *os.File, prompts io.Writer) (string, error) {
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return "", err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	lines := make(chan string)
	errs := make(chan error, 1)
	go func() {
		r := bufio.NewReader(tty)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				errs <- err
				return
			}
			lines <- strings.TrimRight(line, "\r\n")
		}
	}()
	var answers [2]string
	for i, prompt := range []string{"Password: ", "Again: "} {
		fmt.Fprint(prompts, prompt)
		select {
		case answers[i] = <-lines:
			fmt.Fprintln(prompts)
		case err := <-errs:
			fmt.Fprintln(prompts)
			return "", fmt.Errorf("reading the password: %w", err)
		case sig := <-sigs:
			fmt.Fprintln(prompts)
			return "", fmt.Errorf("interrupted (%v)", sig)
		}
	}
	if answers[0] != answers[1] {
		return "", errors.New("the two passwords differ")
	}
	return answers[0], nil
}
