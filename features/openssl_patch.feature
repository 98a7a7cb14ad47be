@fail_fast
Feature: Patch OpenSSL on the web hosts
  openssl-lab 3.0.11-1 -> 3.0.13-1, then nginx restarted one HA group at a time, so a group
  that fails stops the rollout before the next one. nginx keeps the library it started with
  until restarted, and its /health on port 80 says which one that is.

  Background:
    Given I want to update hosts with class roles::web

  Scenario: Report the installed versions
    Given I want to pre-discover how many hosts to update
    When I report the installed version of openssl-lab

  Scenario Outline: Patch HA group <group>
    Given I want to update hosts with fact hagroup=<group>
    And I want to pre-discover how many hosts to update
    When I update the package openssl-lab to 3.0.13-1
    Then the package version for openssl-lab should be 3.0.13-1
    When I restart the service nginx unless port 80 already reports openssl 3.0.13-1
    Then the service nginx should be running
    And the health check on port 80 should report openssl 3.0.13-1 within 30 seconds

    Examples: HA groups, in rollout order
      | group |
      | a     |
      | b     |
      | c     |
