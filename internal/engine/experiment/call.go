package experiment

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// parseCall reads a dimension written as tauro writes skopt's constructors:
// Real(low, high, prior='uniform', name=None), Integer(low, high, ...) and
// Categorical(categories, ..., name=None), optionally qualified
// (skopt.space.Real). Arguments are Python literals; nothing is evaluated.
// base, transform and dtype are accepted and ignored, as they do not change
// which values are searched.
func parseCall(src string) (Dimension, error) {
	p := &callParser{src: src}
	p.space()
	ident := p.ident()
	for p.peek() == '.' {
		p.pos++
		ident = p.ident()
	}
	var kind Kind
	switch ident {
	case "Real":
		kind = Real
	case "Integer":
		kind = Integer
	case "Categorical":
		kind = Categorical
	default:
		return Dimension{}, fmt.Errorf("%q is not a dimension; write Real(low, high, prior='uniform', name='x'), Integer(low, high, name='n') or Categorical(['a', 'b'], name='c')", short(src))
	}
	p.space()
	if !p.eat('(') {
		return Dimension{}, fmt.Errorf("%s needs its arguments in parentheses, e.g. %s(0, 1, name='x')", ident, ident)
	}
	var (
		pos []any
		kw  = map[string]any{}
	)
	for {
		p.space()
		if p.eat(')') {
			break
		}
		if len(pos)+len(kw) > 0 {
			if !p.eat(',') {
				return Dimension{}, p.fail("expected ',' or ')'")
			}
			p.space()
			if p.eat(')') {
				break
			}
		}
		start := p.pos
		if name := p.ident(); name != "" {
			p.space()
			if p.eat('=') {
				v, err := p.literal(0)
				if err != nil {
					return Dimension{}, err
				}
				kw[name] = v
				continue
			}
			p.pos = start
		}
		if len(kw) > 0 {
			return Dimension{}, p.fail("a positional argument follows a keyword argument")
		}
		v, err := p.literal(0)
		if err != nil {
			return Dimension{}, err
		}
		pos = append(pos, v)
	}
	p.space()
	if p.pos != len(p.src) {
		return Dimension{}, p.fail("unexpected text after the closing parenthesis")
	}
	return buildCall(ident, kind, pos, kw)
}

func buildCall(ident string, kind Kind, pos []any, kw map[string]any) (Dimension, error) {
	d := Dimension{Kind: kind}
	var names []string
	if kind == Categorical {
		names = []string{"categories", "prior", "transform", "name"}
	} else {
		names = []string{"low", "high", "prior", "base", "transform", "name", "dtype"}
	}
	if len(pos) > len(names) {
		return d, fmt.Errorf("%s takes at most %d positional arguments (%s)", ident, len(names), strings.Join(names, ", "))
	}
	args := map[string]any{}
	for i, v := range pos {
		args[names[i]] = v
	}
	for k, v := range kw {
		if !contains(names, k) {
			return d, fmt.Errorf("%s has no argument %q; it takes %s", ident, k, strings.Join(names, ", "))
		}
		if _, dup := args[k]; dup {
			return d, fmt.Errorf("%s got %s twice", ident, k)
		}
		args[k] = v
	}
	if v, ok := args["name"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return d, fmt.Errorf("%s: name must be a string", ident)
		}
		d.Name = s
	}
	if v, ok := args["prior"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return d, fmt.Errorf("%s: prior must be a string", ident)
		}
		d.Prior = Prior(strings.ToLower(s))
	}
	if kind == Categorical {
		list, ok := args["categories"].([]any)
		if !ok {
			return d, fmt.Errorf("Categorical needs its categories as a list, e.g. Categorical(['a', 'b'], name='c')")
		}
		d.Categories = list
		d.Prior = "" // a categorical prior is a list of probabilities; all are equal here
		return d, nil
	}
	for _, k := range []string{"low", "high"} {
		v, ok := args[k]
		if !ok {
			return d, fmt.Errorf("%s needs %s, e.g. %s(0, 10, name='x')", ident, k, ident)
		}
		var f float64
		switch x := v.(type) {
		case int64:
			f = float64(x)
		case float64:
			f = x
		default:
			return d, fmt.Errorf("%s: %s must be a number", ident, k)
		}
		if k == "low" {
			d.Low = f
		} else {
			d.High = f
		}
	}
	return d, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

type callParser struct {
	src string
	pos int
}

func (p *callParser) fail(msg string) error {
	return fmt.Errorf("cannot read %q at column %d: %s", short(p.src), p.pos+1, msg)
}

func (p *callParser) peek() byte {
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

func (p *callParser) eat(c byte) bool {
	if p.peek() == c {
		p.pos++
		return true
	}
	return false
}

func (p *callParser) space() {
	for p.pos < len(p.src) && unicode.IsSpace(rune(p.src[p.pos])) {
		p.pos++
	}
}

func (p *callParser) ident() string {
	start := p.pos
	for p.pos < len(p.src) {
		c := rune(p.src[p.pos])
		if c == '_' || unicode.IsLetter(c) || (p.pos > start && unicode.IsDigit(c)) {
			p.pos++
			continue
		}
		break
	}
	return p.src[start:p.pos]
}

// maxNesting bounds lists inside lists.
const maxNesting = 8

func (p *callParser) literal(depth int) (any, error) {
	if depth > maxNesting {
		return nil, p.fail("lists are nested too deeply")
	}
	p.space()
	switch c := p.peek(); {
	case c == '\'' || c == '"':
		return p.str(c)
	case c == '[' || c == '(':
		closer := byte(']')
		if c == '(' {
			closer = ')'
		}
		p.pos++
		var out []any
		for {
			p.space()
			if p.eat(closer) {
				return out, nil
			}
			if len(out) > 0 {
				if !p.eat(',') {
					return nil, p.fail("expected ',' in a list")
				}
				p.space()
				if p.eat(closer) {
					return out, nil
				}
			}
			v, err := p.literal(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		start := p.pos
		p.pos++
		for p.pos < len(p.src) && strings.IndexByte("0123456789.eE+-_", p.src[p.pos]) >= 0 {
			p.pos++
		}
		tok := strings.ReplaceAll(p.src[start:p.pos], "_", "")
		if i, err := strconv.ParseInt(tok, 10, 64); err == nil {
			return i, nil
		}
		f, err := strconv.ParseFloat(tok, 64)
		if err != nil {
			return nil, p.fail(fmt.Sprintf("%q is not a number", tok))
		}
		return f, nil
	default:
		switch id := p.ident(); id {
		case "True", "true":
			return true, nil
		case "False", "false":
			return false, nil
		case "None", "null":
			return nil, nil
		case "":
			return nil, p.fail("expected a number, a quoted string or a list")
		default:
			return nil, p.fail(fmt.Sprintf("%s is not a literal; quote strings ('%s')", id, id))
		}
	}
}

func (p *callParser) str(quote byte) (string, error) {
	p.pos++
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == quote:
			p.pos++
			return b.String(), nil
		case c == '\\' && p.pos+1 < len(p.src):
			b.WriteByte(p.src[p.pos+1])
			p.pos += 2
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	return "", errors.New("a string is not closed: " + short(p.src))
}
