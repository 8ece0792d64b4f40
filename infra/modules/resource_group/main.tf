# One resource group per environment: everything Baton needs lives and dies together.
variable "name" {
  type        = string
  description = "Resource group name, e.g. rg-baton-prod."
}

variable "location" {
  type        = string
  description = "Azure region, e.g. westeurope."
}

variable "tags" {
  type        = map(string)
  description = "Tags on every resource."
}

resource "azurerm_resource_group" "this" {
  name     = var.name
  location = var.location
  tags     = var.tags
}

output "name" {
  value = azurerm_resource_group.this.name
}

output "id" {
  value = azurerm_resource_group.this.id
}

output "location" {
  value = azurerm_resource_group.this.location
}
