// Package cli holds the cobra commands of the bowline binary. Commands turn
// flags into the Config structs of the packages that do the work, wire those
// components together and run them; they hold no logic of their own.
package cli
