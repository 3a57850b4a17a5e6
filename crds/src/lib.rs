//! CustomResourceDefinitions owned by Ferrokube (none yet: the components only use built-in APIs).
