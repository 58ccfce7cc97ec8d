package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// meter sizes a YAML tree as a decoder sees it, every alias expanded, without expanding
// anything: each node's expanded size and height are computed once and reused, so the
// walk costs the document's own size however often its anchors are referenced.
type meter struct {
	maxNodes, maxDepth int
	size               map[*yaml.Node]int  // expanded size of each node measured
	height             map[*yaml.Node]int  // and its expanded height (a leaf is 1)
	open               map[*yaml.Node]bool // nodes whose measurement is under way
	err                error
}

// measure refuses a tree that aliases expand beyond maxNodes nodes, that nests deeper
// than maxDepth levels, or with an alias to a node that contains it (a tree that never
// ends once expanded). Messages name the line of the node, or alias, that crossed the line.
func measure(root *yaml.Node, maxNodes, maxDepth int) error {
	m := &meter{maxNodes: maxNodes, maxDepth: maxDepth,
		size: map[*yaml.Node]int{}, height: map[*yaml.Node]int{}, open: map[*yaml.Node]bool{}}
	m.walk(root, 1)
	return m.err
}

// walk returns the expanded size of n, found at depth.
func (m *meter) walk(n *yaml.Node, depth int) int {
	line := n.Line
	if n.Kind == yaml.AliasNode {
		if m.open[n.Alias] {
			m.err = fmt.Errorf("line %d: alias *%s refers to a node that contains it", line, n.Value)
			return 0
		}
		if n = n.Alias; n == nil {
			return 0
		}
	}
	if s, ok := m.size[n]; ok {
		if depth+m.height[n]-1 > m.maxDepth {
			m.err = m.tooDeep(line)
		}
		return s
	}
	if depth > m.maxDepth {
		m.err = m.tooDeep(line)
		return 0
	}
	m.open[n] = true
	size, height := 1, 1
	for _, c := range n.Content {
		size += m.walk(c, depth+1)
		if m.err != nil {
			return 0
		}
		if size > m.maxNodes {
			m.err = fmt.Errorf("line %d: aliases expand the configuration to more than %d YAML nodes", c.Line, m.maxNodes)
			return 0
		}
		height = max(height, 1+m.height[resolve(c)])
	}
	delete(m.open, n)
	m.size[n], m.height[n] = size, height
	return size
}

func (m *meter) tooDeep(line int) error {
	return fmt.Errorf("line %d: the configuration nests deeper than %d levels", line, m.maxDepth)
}

// resolve returns the node an alias stands for, or n itself.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}
