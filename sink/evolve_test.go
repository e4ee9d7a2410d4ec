package sink

import "testing"

func TestWidenColumnSQL(t *testing.T) {
	got := WidenColumnSQL("p", "d", "public__t__changelog", "a`b", "NUMERIC")
	want := "ALTER TABLE `p.d.public__t__changelog` ALTER COLUMN `a\\`b` SET DATA TYPE NUMERIC"
	if got != want {
		t.Errorf("WidenColumnSQL = %s, want %s", got, want)
	}
}
