package storetest

import "testing"

func TestSuite_RunsEveryBehaviourTest(t *testing.T) { SelfCheck(t) }
