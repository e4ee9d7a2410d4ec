package chaos

import (
	"testing"

	"github.com/tributary-cdc/tributary/internal/localstack"
	"github.com/tributary-cdc/tributary/internal/localstack/stacktest"
)

// stack is the local stack every TestIntegration… test of the package
// shares; nil when the tests run with -short.
var stack *localstack.Stack

func TestMain(m *testing.M) {
	stacktest.Main(m, func(s *localstack.Stack) { stack = s })
}
