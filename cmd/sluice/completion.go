package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// `sluice completion bash|zsh|fish` prints a completion script for the
// shell. The scripts are generated from the program itself: the commands
// and subcommands from its dispatch tables, each command's flags from
// its own -h output, so a new flag completes without anyone editing the
// scripts.

// command is one entry of the completion table: a word, its subcommands
// and, for a command that runs, its flags (with the leading --).
type command struct {
	name  string
	subs  []command
	flags []string
}

// topCommands are the first words `sluice` takes, in the order of the
// usage text, which lists every command; the groups (queue, dlq, bench,
// completion) list their subcommands in subs, any other command is
// completed with its flags.
func (e *env) topCommands(ctx context.Context) []command {
	verbs := func(group string, m map[string]func(context.Context, []string) error) []command {
		var out []command
		for _, v := range slices.Sorted(maps.Keys(m)) {
			out = append(out, command{name: v, flags: e.flagsOf(ctx, group, v)})
		}
		return out
	}
	var suites []command
	for _, s := range append(slices.Sorted(maps.Keys(benchSuites)), "http") {
		suites = append(suites, command{name: s, flags: e.flagsOf(ctx, "bench", s)})
	}
	groups := map[string][]command{
		"queue":      verbs("queue", e.queueVerbs()),
		"dlq":        verbs("dlq", e.dlqVerbs()),
		"bench":      suites,
		"completion": {{name: "bash"}, {name: "zsh"}, {name: "fish"}},
	}
	var out []command
	seen := map[string]bool{}
	for _, word := range append(usageCommands(usageText), "help") {
		if seen[word] {
			continue
		}
		seen[word] = true
		if subs, ok := groups[word]; ok {
			out = append(out, command{name: word, subs: subs})
			continue
		}
		out = append(out, command{name: word, flags: e.flagsOf(ctx, word)})
	}
	return out
}

// usageCommands are the first words of the lines of a usage text's
// command list, in order, repeated as often as they appear.
func usageCommands(text string) []string {
	var words []string
	in := false
	for _, line := range strings.Split(text, "\n") {
		switch {
		case line == "commands:":
			in = true
		case line == "":
			in = false
		case in && strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   "):
			// (A line indented further continues the one before.)
			words = append(words, strings.Fields(line)[0])
		}
	}
	return words
}

// flagsOf runs a command with -h and reads its flags from the help, which
// printFlags writes as "  --name [type]" lines. --env-file, which every
// command takes, is added.
func (e *env) flagsOf(ctx context.Context, words ...string) []string {
	var help bytes.Buffer
	sub := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &help, getenv: func(string) string { return "" }}
	_ = sub.dispatch(ctx, append(words, "-h"))
	flags := []string{"--env-file"}
	for _, line := range strings.Split(help.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "  --"); ok {
			name, _, _ := strings.Cut(rest, " ")
			flags = append(flags, "--"+name)
		}
	}
	slices.Sort(flags)
	return flags
}

func (e *env) completion(ctx context.Context, args []string) error {
	if len(args) != 1 || isHelp(args[0]) {
		msg := "usage: sluice completion bash|zsh|fish\n\n" +
			"  bash: source <(sluice completion bash)    (or save it in /etc/bash_completion.d/sluice)\n" +
			"  zsh:  source <(sluice completion zsh)     (or save it as _sluice in a directory of $fpath)\n" +
			"  fish: sluice completion fish > ~/.config/fish/completions/sluice.fish\n"
		if len(args) == 1 {
			fmt.Fprint(e.stdout, msg)
			return nil
		}
		fmt.Fprint(e.stderr, msg)
		return usagef("completion: want one shell: bash, zsh or fish")
	}
	cmds := e.topCommands(ctx)
	var script string
	switch args[0] {
	case "bash":
		script = bashCompletion(cmds)
	case "zsh":
		script = zshCompletion(cmds)
	case "fish":
		script = fishCompletion(cmds)
	default:
		return usagef("completion: unknown shell %q (want bash, zsh or fish)", args[0])
	}
	_, err := io.WriteString(e.stdout, script)
	return writeErr(err)
}

func names(cmds []command) string {
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i] = c.name
	}
	return strings.Join(out, " ")
}

// Every word written into the scripts is a command or flag name of this
// program: letters, digits and '-', nothing a shell would interpret.

func bashCompletion(cmds []command) string {
	var b strings.Builder
	b.WriteString(`# bash completion for sluice: source <(sluice completion bash)
_sluice() {
  local cur="${COMP_WORDS[COMP_CWORD]}" words="" flags=""
  if ((COMP_CWORD == 1)); then
    words="` + names(cmds) + `"
  else
    case "${COMP_WORDS[1]}" in
`)
	for _, c := range cmds {
		fmt.Fprintf(&b, "      %s)\n", c.name)
		if len(c.subs) > 0 {
			fmt.Fprintf(&b, "        if ((COMP_CWORD == 2)); then words=%q; fi\n", names(c.subs))
			b.WriteString("        case \"${COMP_WORDS[2]}\" in\n")
			for _, s := range c.subs {
				fmt.Fprintf(&b, "          %s) flags=%q ;;\n", s.name, strings.Join(s.flags, " "))
			}
			b.WriteString("        esac\n")
		} else {
			fmt.Fprintf(&b, "        flags=%q\n", strings.Join(c.flags, " "))
		}
		b.WriteString("        ;;\n")
	}
	b.WriteString(`    esac
  fi
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$flags" -- "$cur")
  elif [[ -n $words ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
  fi
}
complete -o default -F _sluice sluice
`)
	return b.String()
}

func zshCompletion(cmds []command) string {
	var b strings.Builder
	b.WriteString(`#compdef sluice
# zsh completion for sluice: source <(sluice completion zsh), or save as _sluice in $fpath
_sluice() {
  local -a words_ flags_
  if ((CURRENT == 2)); then
    words_=(` + names(cmds) + `)
  else
    case "${words[2]}" in
`)
	for _, c := range cmds {
		fmt.Fprintf(&b, "      %s)\n", c.name)
		if len(c.subs) > 0 {
			fmt.Fprintf(&b, "        if ((CURRENT == 3)); then words_=(%s); fi\n", names(c.subs))
			b.WriteString("        case \"${words[3]}\" in\n")
			for _, s := range c.subs {
				fmt.Fprintf(&b, "          %s) flags_=(%s) ;;\n", s.name, strings.Join(s.flags, " "))
			}
			b.WriteString("        esac\n")
		} else {
			fmt.Fprintf(&b, "        flags_=(%s)\n", strings.Join(c.flags, " "))
		}
		b.WriteString("        ;;\n")
	}
	b.WriteString(`    esac
  fi
  if [[ ${words[CURRENT]} == -* ]]; then
    compadd -- $flags_
  elif ((${#words_})); then
    compadd -- $words_
  else
    _files
  fi
}
if [[ ${funcstack[1]} == _sluice ]]; then
  _sluice "$@"
else
  compdef _sluice sluice
fi
`)
	return b.String()
}

func fishCompletion(cmds []command) string {
	var b strings.Builder
	b.WriteString(`# fish completion for sluice: sluice completion fish > ~/.config/fish/completions/sluice.fish
# __sluice_at N [WORD...]: the command line so far has N words, the ones
# after "sluice" being WORD...
function __sluice_at
    set -l words (commandline -opc)
    test (count $words) -eq $argv[1]; or return 1
    set -l i 2
    for w in $argv[2..-1]
        test "$words[$i]" = "$w"; or return 1
        set i (math $i + 1)
    end
end
# __sluice_in WORD...: the words after "sluice" start with WORD...
function __sluice_in
    set -l words (commandline -opc)
    set -l i 2
    for w in $argv
        test "$words[$i]" = "$w"; or return 1
        set i (math $i + 1)
    end
end
complete -c sluice -f
`)
	fmt.Fprintf(&b, "complete -c sluice -n '__sluice_at 1' -a '%s'\n", names(cmds))
	for _, c := range cmds {
		if len(c.subs) > 0 {
			fmt.Fprintf(&b, "complete -c sluice -n '__sluice_at 2 %s' -a '%s'\n", c.name, names(c.subs))
			for _, s := range c.subs {
				for _, f := range s.flags {
					fmt.Fprintf(&b, "complete -c sluice -n '__sluice_in %s %s' -l %s\n", c.name, s.name, strings.TrimPrefix(f, "--"))
				}
			}
			continue
		}
		for _, f := range c.flags {
			fmt.Fprintf(&b, "complete -c sluice -n '__sluice_in %s' -l %s\n", c.name, strings.TrimPrefix(f, "--"))
		}
	}
	return b.String()
}
