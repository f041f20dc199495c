package template

import (
	"errors"

	"github.com/askr-php/askr/internal/pool"
)

// errNotYet marks what is not built yet (issue 16 skeleton).
var errNotYet = errors.New("template: staging is not implemented yet")

// Stage boots a new template beside the running one (from == nil: a reload), or promotes the
// idle forked worker from to be it (a refork). See pool.Stager.
func (t *Template) Stage(from pool.Process) error { return errNotYet }

// StartStaged forks the canary from the staged template. See pool.Stager.
func (t *Template) StartStaged() (pool.Process, error) { return nil, errNotYet }

// Commit makes the staged template the running one. See pool.Stager.
func (t *Template) Commit() {}

// Abandon ends the staged template. See pool.Stager.
func (t *Template) Abandon() {}

var _ pool.Stager = (*Template)(nil)
