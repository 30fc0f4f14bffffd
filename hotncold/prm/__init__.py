"""Process reward models: one interface (`base.PRM.score`), chosen by `prm.name` (`registry`)."""
