Feature: Update the production systems
  Background:
    Given the load balancer has ip address 10.231.0.2
    And I want to update hosts with class roles::web
    And I want to update hosts with fact country=de
    And I want to pre-discover how many hosts to update
  Scenario: Update the website
    When I block the load balancer
    Then traffic from the load balancer should be blocked
    When I update the package mywebapp
    Then the package version for mywebapp should be 4.2.6-3.el5
    When I unblock the load balancer
    Then traffic from the load balancer should be unblocked
